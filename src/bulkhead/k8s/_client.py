"""The connection to an API server, through the official `kubernetes` client.

`connect` builds a `kubernetes.client.ApiClient` from the pod's service
account (in-cluster: `KUBERNETES_SERVICE_HOST`/`_PORT`, the token and the CA
bundle in the service account directory) or from a kubeconfig file and
context.  `KubeApi` sends each request through that client's own
`param_serialize` + `call_api`, the path `kubernetes.dynamic` takes too, so
the client's TLS, bearer-token (and its refresh) and proxy settings apply;
answers come back as plain JSON dicts.  The token lives only in the client's
configuration: no message built here ever contains a header.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkhead.errors import Unavailable

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


class ClusterError(Unavailable):
    """The API server could not be reached, or refused a request.

    `status` is the HTTP status (0 when no answer came) and `reason` the
    Status object's reason (`NotFound`, `Conflict`, ...).  The message names
    the request's method and path and the server's own message, never a header.
    """

    def __init__(self, message: str, *, status: int = 0, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the cluster is: in-cluster, or a kubeconfig (None: `$KUBECONFIG` or
    `~/.kube/config`) and its context (None: the current one).  Without
    `in_cluster` and without `kubeconfig`, a process inside a pod (where
    `KUBERNETES_SERVICE_HOST` is set) uses its service account."""

    in_cluster: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    service_account_dir: Path = SERVICE_ACCOUNT_DIR
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    def wants_in_cluster(self) -> bool:
        if self.in_cluster:
            return True
        return self.kubeconfig is None and self.context is None and IN_CLUSTER_ENV in self.environ


def connect(connection: Connection) -> ApiClient:
    """An `ApiClient` for the connection, or a `ClusterError` saying what is missing.

    The `kubernetes` package (the `k8s` extra) is imported here, not with the module, so
    the CLI starts without it."""
    try:
        from kubernetes import config as kube_config
        from kubernetes.client import ApiClient, Configuration
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.incluster_config import InClusterConfigLoader
    except ImportError:
        missing = "the kubernetes client is not installed: pip install 'bulkhead[k8s]'"
        raise ClusterError(missing) from None
    configuration = Configuration()
    try:
        if connection.wants_in_cluster():
            loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(connection.service_account_dir / "token"),
                cert_filename=str(connection.service_account_dir / "ca.crt"),
                environ=connection.environ,
            )
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        else:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=connection.kubeconfig,
                context=connection.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = "in-cluster" if connection.wants_in_cluster() else "kubeconfig"
        raise ClusterError(f"cannot load the {where} configuration: {_first_line(exc)}") from None
    return ApiClient(configuration=configuration)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


Query = Sequence[tuple[str, str]]


class KubeApi:
    """JSON requests to the API server through an official `ApiClient`."""

    def __init__(self, api_client: ApiClient, *, timeout_s: float = 30.0):
        self.api_client = api_client
        self.timeout_s = timeout_s

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        """Send one request; a 2xx answer's status and JSON body, else a `ClusterError`."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self.api_client.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*request, _request_timeout=self.timeout_s)
            raw = response.read()  # type: ignore[no-untyped-call]
        except ApiException as exc:  # The client's wrapper of a TLS failure.
            why = _first_line(Exception(exc.reason))
            raise ClusterError(f"cannot reach the API server at {self.host}: {why}") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise ClusterError(f"cannot reach the API server at {self.host}") from None
        answer = _json(raw)
        if not 200 <= response.status <= 299:
            raise _refused(method, path, response.status, answer)
        return response.status, answer


def _json(raw: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _refused(method: str, path: str, status: int, answer: Mapping[str, Any]) -> ClusterError:
    """The server's Status object (kind Status: reason, message) as one line."""
    reason = str(answer.get("reason") or "")
    message = str(answer.get("message") or "").replace("\n", " ")[:300]
    text = f"{method} {path}: {status} {reason}".rstrip()
    return ClusterError(f"{text}: {message}" if message else text, status=status, reason=reason)
