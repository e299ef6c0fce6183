"""Audio in, opus frames out (the only package that imports av).

``pipeline.Pipeline`` is the entry point; ``frames.FrameBuffer`` is what the sender reads;
``filters`` validates Lavalink-style filter sets; ``probe`` lets sources inspect media.
"""
