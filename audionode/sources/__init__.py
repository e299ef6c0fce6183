"""Sources: the plugin API (``api``), the built-ins (``http``, ``ytdlp``, ``local``), the
fetch policy (``netguard``) and ``loader.SourceManager``, which picks and runs them."""
