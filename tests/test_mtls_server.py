"""Mutual TLS on the real server: admission paths need a client certificate from the client CA;
the kubelet's probes (no certificate) still reach /healthz and /readyz."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import orjson

from tests import serve_support
from webhook import certs


def _client_pair(tmp_path: Path, ca_dir: Path, name: str) -> tuple[Path, Path]:
    """A client certificate issued by the CA in ``ca_dir`` (as the API server's kubeconfig holds)."""
    ca = certs.load_certs(ca_dir / "ca.crt")[0]
    ca_key = certs.load_key(ca_dir / "ca.key")
    cert, key = certs.issue_leaf(ca, ca_key=ca_key, dns_names=[name], client=True)
    cert_file, key_file = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_file.write_bytes(certs.cert_pem(cert))
    key_file.write_bytes(certs.key_pem(key))
    return cert_file, key_file


async def test_admission_paths_require_a_client_certificate_but_probes_do_not(tmp_path: Path) -> None:
    cert_dir = serve_support.make_certs(tmp_path / "server")
    clients = tmp_path / "clients"
    certs.ensure(clients, service="client-ca", namespace="test")  # a separate CA for clients
    settings = serve_support.settings(cert_dir, client_ca=clients / "ca.crt")
    body = serve_support.review_body()
    headers = {"Content-Type": "application/json"}
    async with serve_support.serving(settings) as base:
        anonymous = serve_support.client_context(cert_dir)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz", ssl=anonymous) as resp:
                assert resp.status == 200
            async with session.get(f"{base}/readyz", ssl=anonymous) as resp:
                assert resp.status == 200
            async with session.post(f"{base}/validate", data=body, headers=headers, ssl=anonymous) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"] == (
                    "a client certificate signed by the configured client CA is required")

        trusted = serve_support.client_context(cert_dir)
        trusted.load_cert_chain(*_client_pair(tmp_path, clients, "kube-apiserver"))
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{base}/validate", data=body, headers=headers, ssl=trusted) as resp,
        ):
            assert resp.status == 200
            # Served: the answer to this review (what it decides is the shipped policies' business).
            assert (await resp.json())["response"]["uid"] == orjson.loads(body)["request"]["uid"]

        stranger = serve_support.client_context(cert_dir)
        stranger.load_cert_chain(*_client_pair(tmp_path, cert_dir, "intruder"))  # the wrong CA
        async with aiohttp.ClientSession() as session:
            try:
                async with session.post(f"{base}/validate", data=body, headers=headers, ssl=stranger) as resp:
                    refused = resp.status != 200
            except (aiohttp.ClientError, ssl.SSLError, ConnectionResetError):
                refused = True
        assert refused
