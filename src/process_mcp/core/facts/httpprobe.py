"""One HTTP GET readiness probe, standard library only (run it in a worker thread).

"Ready" means the server answers at all with a status below 500: a 404 or a redirect to
a login page still proves it is up. So redirects are not followed, proxies from the
environment are ignored (a dev server on localhost must not be reached through a
corporate proxy), and TLS certificates are not verified (dev servers use self-signed
ones; nothing is sent and the answer's body is not read).
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    _NoRedirect(),
    urllib.request.HTTPSHandler(context=ssl._create_unverified_context()),
)


def probe_url(url: str, timeout: float) -> int | None:
    """The HTTP status ``url`` answers with, or ``None`` when nothing answered in time."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "process-mcp"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    except Exception:  # http.client.RemoteDisconnected, BadStatusLine, ...: not up yet
        return None
