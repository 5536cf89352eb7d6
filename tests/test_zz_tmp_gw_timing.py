import time
from test_local_gateway import *  # noqa

def test_timing(stack):
    server = LocalApiGateway(stack, [KEY], "127.0.0.1", 0).start()
    try:
        for length, body in [("abc", b"{}"), ("abc", b"x" * 200_000), ("100", b"{}"), ("5", b"{}")]:
            began = time.monotonic()
            status = raw(server, request("POST", "/v1/generations", f"x-api-key: {KEY}", f"Content-Length: {length}", body=body))[0]
            print("CL", length, len(body), status, round(time.monotonic() - began, 2))
        began = time.monotonic()
        status = raw(server, request("POST", "/v1/generations", f"Content-Length: 200000", body=b"x" * 200_000))[0]
        print("nokey", status, round(time.monotonic() - began, 2))
        began = time.monotonic()
        r = httpx.post(f"{server.url}/edits", content=b"x" * (11 * 1024 * 1024), headers={"x-api-key": KEY}, timeout=30)
        print("11MB httpx", r.status_code, round(time.monotonic() - began, 2))
        began = time.monotonic()
        r = httpx.post(f"{server.url}/edits", content=b"x" * (7 * 1024 * 1024), headers={"x-api-key": KEY}, timeout=30)
        print("7MB httpx", r.status_code, r.json()["error"]["code"], round(time.monotonic() - began, 2))
        began = time.monotonic()
        r = httpx.post(f"{server.url}/edits", content=iter([b"x" * (11 * 1024 * 1024)]), headers={"x-api-key": KEY}, timeout=30)
        print("11MB chunked httpx", r.status_code, round(time.monotonic() - began, 2))
    finally:
        server.stop()
    assert 0
