"""The floor: the least an aiohttp HTTPS webhook can do. It parses the review and answers allowed.

Same TLS settings (:func:`webhook.tls.server_context`), same event loop (uvloop) and no access
log, like the real server; whatever the real server costs beyond this is our code.

Run as ``python -m bench.bare --port P --cert C --key K``; prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import orjson
import uvloop
from aiohttp import web

from webhook import tls


async def answer(request: web.Request) -> web.Response:
    review = orjson.loads(await request.read())
    response = {"uid": review["request"]["uid"], "allowed": True}
    body = orjson.dumps({"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response})
    return web.Response(body=body, content_type="application/json")


async def main(*, port: int, cert: Path, key: Path) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.server_context(cert=cert, key=key)).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args()
    uvloop.install()
    asyncio.run(main(port=args.port, cert=args.cert, key=args.key))
