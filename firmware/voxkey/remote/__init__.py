"""An optional speech server on the LAN (Wyoming or OpenAI-compatible), with the on-device model as fallback.

Off by default (``asr.remote.enabled``). ``settings`` is imported by the config
reader; ``engine`` (and the network clients) only when the feature is used.
"""
