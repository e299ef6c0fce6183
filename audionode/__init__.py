"""audionode: an audio node server for Discord bots."""

__version__ = "0.1.0"
