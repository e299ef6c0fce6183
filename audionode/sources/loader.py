"""Finding the sources (built-ins, entry points, the plugins/ folder) and running them.

Order in which sources are asked (the first whose ``load`` returns a result wins):

1. ``local`` (only when ``sources.local.enabled``),
2. plugins named in ``sources.plugins``, from ``sources.plugins_dir``, in that order,
3. installed plugins: entry points in the group ``audionode.sources``, by name,
4. ``http`` (direct media; hands web pages on), 5. ``ytdlp``.

Plugins come before the built-ins so that they can claim URLs the built-ins would also try.

The manager owns what the built-ins share: the network guard (``netguard.py``, with its DNS
threads) and the probe processes (``probing.py``). Every Playable a source returns, plugins'
included, leaves with the node's input policy stamped on it (``audionode/netpolicy.py``: the
engine fetches and decodes under it).

A plugin is a *factory*: a callable taking a :class:`PluginContext` and returning a Source or
an iterable of Sources. A plugin module in ``plugins/`` exposes it as ``sources``; an entry
point names it directly (``tone = "my_pkg.tone:sources"``). A plugin that fails to import, whose
factory raises, or that returns something else is reported in :attr:`SourceManager.failures`,
logged, and skipped: it never stops the node.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from audionode.config import SourcesConfig
from audionode.errors import AudionodeError, BadRequest, NotFound, SourceError
from audionode.netpolicy import InputPolicy
from audionode.sources.api import LoadResult, Playable, PluginContext, Source, Track
from audionode.sources.netguard import NetGuard
from audionode.sources.probing import Prober

ENTRY_POINT_GROUP = "audionode.sources"
_log = logging.getLogger(__name__)

ExtractionObserver = Callable[[str, str, float, bool], None]
"""``observer(source, op, seconds, ok)`` after every ``load`` or ``open`` a source ran (the
metrics of ``audionode/observe/``); ``ok`` is False for an error result or an exception."""
_PLUGIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PREFIXED = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S")
"""``scheme:rest`` — a URL or a source prefix; never turned into a search."""


@dataclass(frozen=True, slots=True)
class PluginFailure:
    plugin: str
    message: str


class SourceManager:
    """Picks the source for a query and runs it. Create with :meth:`from_config`."""

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        default_search: str = "",
        failures: Sequence[PluginFailure] = (),
        shared: Shared | None = None,
    ) -> None:
        self.sources = list(sources)
        self.default_search = default_search
        self.failures = list(failures)
        self.shared = shared
        self.policy = shared.guard.policy if shared is not None else InputPolicy()
        self.observer: ExtractionObserver | None = None
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate source names in {names}")

    @classmethod
    def from_config(cls, config: SourcesConfig, *, base_dir: Path | None = None) -> SourceManager:
        shared = Shared.from_config(config)
        sources, failures = load_sources(config, base_dir=base_dir, shared=shared)
        return cls(
            sources,
            default_search=config.default_search,
            failures=failures,
            shared=shared,
        )

    def get(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise NotFound(f"no source named {name!r}")

    def candidates(self, query: str) -> list[Source]:
        return [s for s in self.sources if _handles(s, query)]

    async def load(self, query: str) -> LoadResult:
        """Resolve ``query``. Problems come back as an ``error`` result with a clear message;
        only a malformed query raises (BadRequest)."""
        query = query.strip()
        if not query:
            raise BadRequest("query must not be empty")
        if self.default_search and not _PREFIXED.match(query):
            query = f"{self.default_search}:{query}"
        tried = self.candidates(query)
        for source in tried:
            began = time.perf_counter()
            result = await _load_with(source, query)
            self._observed(source.name, "load", began, result is None or result.type != "error")
            if result is not None:
                return result
        if not tried:
            names = ", ".join(s.name for s in self.sources) or "none"
            return LoadResult.of_error(f"no source can load {query!r} (sources: {names})")
        return LoadResult.of_error(f"no source could load {query!r}")

    async def open(self, track: Track) -> Playable:
        """Ask the track's source for a Playable, stamped with the node's input policy;
        raises SourceError / NotFound."""
        source = self.get(track.source)
        began = time.perf_counter()
        try:
            playable = await source.open(track)
        except AudionodeError:
            self._observed(source.name, "open", began, False)
            raise
        except Exception as e:
            self._observed(source.name, "open", began, False)
            _log.exception("source %s failed to open a track", source.name)
            raise SourceError(f"{source.name} could not open the track: {e}") from None
        self._observed(source.name, "open", began, True)
        return msgspec.structs.replace(playable, policy=self.policy)

    def _observed(self, source: str, op: str, began: float, ok: bool) -> None:
        if self.observer is not None:
            self.observer(source, op, time.perf_counter() - began, ok)

    async def close(self) -> None:
        for source in self.sources:
            try:
                await source.close()
            except Exception:
                _log.exception("source %s failed to close", source.name)
        if self.shared is not None:
            await self.shared.close()


@dataclass(frozen=True, slots=True)
class Shared:
    """What the built-in sources share: the guard and the probe processes."""

    guard: NetGuard
    prober: Prober

    @classmethod
    def from_config(cls, config: SourcesConfig) -> Shared:
        timeout = config.http.timeout
        guard = NetGuard(input_policy(config), timeout=timeout, dns_threads=config.dns_threads)
        return cls(guard, Prober(config.probe_processes, timeout))

    async def close(self) -> None:
        await self.prober.close()
        await self.guard.close()


def input_policy(config: SourcesConfig) -> InputPolicy:
    """The node's input policy from ``sources.http`` and ``sources.media``."""
    media = config.media
    return InputPolicy(
        allow_private=config.http.allow_private,
        allow_networks=tuple(config.http.allow_networks),
        min_sample_rate=media.min_sample_rate,
        max_sample_rate=media.max_sample_rate,
        max_channels=media.max_channels,
        max_playlist_bytes=media.max_playlist_bytes,
    )


def _handles(source: Source, query: str) -> bool:
    try:
        return bool(source.handles(query))
    except Exception:
        _log.exception("source %s failed in handles()", source.name)
        return False


async def _load_with(source: Source, query: str) -> LoadResult | None:
    try:
        return await source.load(query)
    except AudionodeError as e:
        return LoadResult.of_error(e.message)
    except Exception as e:
        _log.exception("source %s failed to load %r", source.name, query)
        return LoadResult.of_error(f"{source.name} failed: {e}")


def load_sources(
    config: SourcesConfig, *, base_dir: Path | None = None, shared: Shared | None = None
) -> tuple[list[Source], list[PluginFailure]]:
    """Instantiate every enabled source in asking order; report plugins that failed.
    Without ``shared`` the built-ins make (and close) their own guard and probe processes."""
    from audionode.sources.http import HttpSource
    from audionode.sources.local import LocalSource
    from audionode.sources.ytdlp import YtdlpSource

    found: list[Source] = []
    failures: list[PluginFailure] = []
    guard, prober = (shared.guard, shared.prober) if shared is not None else (None, None)
    policy = input_policy(config)
    if config.local.enabled:
        found.append(LocalSource(config.local, prober=prober, policy=policy))
    plugins_dir = Path(config.plugins_dir)
    if not plugins_dir.is_absolute():
        plugins_dir = (base_dir or Path.cwd()) / plugins_dir
    for name in config.plugins:
        _add(found, failures, name, functools.partial(_plugin_factory, name, plugins_dir), config)
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=_ep_name):
        _add(found, failures, ep.name, ep.load, config)
    if config.http.enabled:
        found.append(HttpSource(config.http, guard=guard, prober=prober))
    if config.ytdlp.enabled:
        found.append(YtdlpSource(config.ytdlp, config.http, guard=guard))
    return found, failures


def _ep_name(ep: importlib.metadata.EntryPoint) -> str:
    return ep.name


def _add(
    found: list[Source],
    failures: list[PluginFailure],
    name: str,
    get_factory: Callable[[], Any],
    config: SourcesConfig,
) -> None:
    try:
        factory = get_factory()
        made = factory(PluginContext(name=name, options=config.plugin_options.get(name, {})))
        new = _as_sources(made)
    except Exception as e:
        message = f"{type(e).__name__}: {e}"
        _log.warning("plugin %s not loaded: %s", name, message)
        failures.append(PluginFailure(name, message))
        return
    taken = {s.name for s in found} | {"local", "http", "ytdlp"}
    for source in new:
        if source.name in taken:
            failures.append(PluginFailure(name, f"source name {source.name!r} is already taken"))
            _log.warning("plugin %s: source name %r already taken", name, source.name)
            continue
        taken.add(source.name)
        found.append(source)


def _as_sources(made: Any) -> list[Source]:
    items = [made] if isinstance(made, Source) else list(_iterable(made))
    for item in items:
        if not isinstance(item, Source):
            raise TypeError(f"the factory returned {item!r}, which is not a Source")
    return items


def _iterable(made: Any) -> Iterable[Any]:
    if isinstance(made, Iterable) and not isinstance(made, str | bytes):
        return made
    raise TypeError(f"the factory returned {made!r}, not a Source or Sources")


def _plugin_factory(name: str, plugins_dir: Path) -> Any:
    if not _PLUGIN_NAME.match(name):
        raise ValueError(f"invalid plugin name {name!r} (a Python module name is expected)")
    module = _import_plugin(name, plugins_dir)
    factory = getattr(module, "sources", None)
    if not callable(factory):
        raise TypeError(f"plugin module {name!r} has no callable `sources(context)`")
    return factory


def _import_plugin(name: str, plugins_dir: Path) -> ModuleType:
    path, search = plugins_dir / f"{name}.py", None
    if not path.is_file():
        path, search = plugins_dir / name / "__init__.py", [str(plugins_dir / name)]
    if not path.is_file():
        raise FileNotFoundError(f"no {name}.py or {name}/ in {plugins_dir}")
    module_name = f"audionode_plugins.{name}"
    spec = importlib.util.spec_from_file_location(
        module_name, path, submodule_search_locations=search
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
