"""Text between whisper and the keyboard: clean-up of raw transcripts (and, later, spoken commands)."""

from voxkey.text.cleanup import clean_phrase, clean_transcript, join_phrases

__all__ = ["clean_phrase", "clean_transcript", "join_phrases"]
