"""A bot written against Discodo 3.0.5's own client classes (``discodo.client``), unmodified.

Run as a subprocess by ``test_discodo_client.py`` with ``PYTHONPATH`` pointing at a folder where
``pip install --no-deps --target`` put ``discodo==3.0.5`` and ``websockets==9.1`` (the client's
pins; Sanic's websockets 17 lacks the legacy ``connect(loop=, klass=)`` it calls). Discodo's
``__init__`` imports its server half (PyAV 8.0.3, youtube-dl, sanic 21.6), which does not install
on Python 3.11, so the client subpackage is loaded under a parent package object carrying the two
names the client takes from it (``__version__``, ``__dirname``); no client code is changed.
``DPYClient`` (the discord.py 1.x glue) is not used: this bot forwards its voice events with
``Node.discordDispatch`` as the client's docs say to without discord.py.

Usage: ``python discodo_driver.py '<json args>'``; prints one JSON report line per step.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import types
from typing import Any


def load_client(root: str) -> Any:
    pkg = types.ModuleType("discodo")
    pkg.__path__ = [os.path.join(root, "discodo")]  # type: ignore[attr-defined]
    pkg.__version__ = "3.0.5"  # type: ignore[attr-defined]
    pkg.__dirname = os.path.join(root, "discodo")  # type: ignore[attr-defined]
    sys.modules["discodo"] = pkg
    import discodo.client as client

    return client


def report(step: str, **data: Any) -> None:
    print(json.dumps({"step": step, **data}), flush=True)


class Bot:
    """What DPYClient would be; the node's client only needs ``Nodes`` from it."""

    Nodes: list[Any] = []


async def main(args: dict[str, Any]) -> None:
    client = load_client(args["root"])
    from discodo.errors import HTTPException, NodeException

    guild, user = args["guild"], args["user"]
    node = client.Node(
        Bot(), "127.0.0.1", args["port"], user, shard_id=0, password=args["password"]
    )
    await node.connect()
    identified = await node.dispatcher.wait_for("IDENTIFIED", timeout=10)
    report("identified", d=identified)

    vsu = {"guild_id": str(guild), "user_id": str(user), "channel_id": str(args["channel"]),
           "session_id": args["session_id"]}  # fmt: skip
    await node.discordDispatch({"op": 0, "t": "VOICE_STATE_UPDATE", "d": vsu})
    created = await node.dispatcher.wait_for("VC_CREATED", timeout=10)
    vc = node.getVC(guild)
    report("vc_created", id=vc.id, same=created["id"] == vc.id)
    server = {"guild_id": str(guild), "token": args["token"], "endpoint": args["endpoint"]}
    await node.discordDispatch({"op": 0, "t": "VOICE_SERVER_UPDATE", "d": server})
    connected = await vc.dispatcher.wait_for("VOICE_CONNECTED", timeout=15)
    report("voice_connected", mode=connected["mode"], dave=connected["dave_protocol_version"])

    first = await vc.loadSource("tone:440?seconds=6")
    started = await vc.dispatcher.wait_for("SOURCE_START", timeout=15)
    report("loaded", tag=first.tag, started=started["source"].tag, type=type(first).__name__)
    await asyncio.sleep(1.0)  # a second of it for the listener
    await vc.loadSource("tone:660?seconds=2")
    await vc.loadSource("tone:880?seconds=2")
    await asyncio.sleep(0.3)
    mirror = [item.tag for item in vc.Queue]
    rest_queue = [item.tag for item in (await vc.http.queue())["entries"]]
    report("queue_mirror", mirror=mirror, rest=rest_queue)

    options = await vc.setVolume(0.5)
    report("volume", options=options)
    await vc.seek(2.0)  # REST, then getState over the websocket (guild_id echoed)
    current = await vc.getCurrent()
    report("seek", position=current.data["position"], as_of=current.data["as_of"],
           now=time.time(), type=type(current).__name__, state=vc.state.name)  # fmt: skip
    await vc.pause()
    paused_state = vc.state.name
    await asyncio.sleep(0.5)
    await vc.resume()
    report("pause_resume", paused=paused_state, resumed=vc.state.name)

    try:
        await vc.seek(10_000)
    except HTTPException as e:
        report("rest_error", status=e.status, description=e.description, message=e.message)
    ghost = client.VoiceClient(node, "0" * 32, 4242)  # a voice client the node does not hold
    node.voiceClients[4242] = ghost
    began = time.monotonic()
    try:
        await ghost.query("getState")
    except NodeException as e:
        report("ws_error", name=e.name, reason=e.reason, took=time.monotonic() - began)
    ghost.__del__()

    await vc.skip()
    stopped = await vc.dispatcher.wait_for(
        "SOURCE_STOP", condition=lambda d: d["source"].tag == first.tag, timeout=10
    )
    report("skip", reason=stopped["reason"])

    await node.ws.close()  # the bot's socket drops; the session lives on (vc_timeout)
    await asyncio.sleep(0.5)
    await node.connect()
    resumed = await node.dispatcher.wait_for("RESUMED", timeout=10)
    await node.dispatcher.wait_for("VC_CREATED", timeout=10)
    await asyncio.sleep(0.2)
    again = node.getVC(guild, safe=True)
    report("resumed", d=resumed, id=again.id if again else None)

    await again.destroy()
    report("destroyed", known=node.getVC(guild, safe=True) is not None)
    await node.destroy()
    await node.session.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
