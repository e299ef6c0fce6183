"""``audionode demo``: the whole chain on loopback, no Discord needed, checking what it hears.

Modules: :mod:`.run` (the orchestration: :func:`run_demo`, :func:`main`), :mod:`.bot` (the
simulated bot and the LVSP client that stands in for Discord), :mod:`.listener` (a receive-only
voice client on the package's sans-I/O voice core), :mod:`.analysis` (FFT and the self-check),
:mod:`.report` (the printed text).
"""
