"""voxkey: a Raspberry Pi that becomes a keyboard you talk to."""

__version__ = "0.1.0"
