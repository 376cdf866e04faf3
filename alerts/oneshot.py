"""One fault from a process without a transport of its own (the local-cluster supervisor): connect,
cast it to the alert service, disconnect, all within ``timeout`` seconds."""

from __future__ import annotations

import asyncio
import socket
import uuid

from contracts.alerts import AlertsClient
from rpc import RpcError, RpcSettings, create_transport

from .logs import log
from .faults import Fault, alerts_service_name, encode_fault

__all__ = ["send_fault"]



async def send_fault(settings: RpcSettings, cluster: str, fault: Fault, *, timeout: float) -> bool:
    """Whether the fault was handed to the broker (a failure is logged, never raised)."""
    transport = create_transport(f"faults-{uuid.uuid4().hex[:8]}@{socket.gethostname()}", settings)
    try:
        async with asyncio.timeout(timeout):
            await transport.start()
            await AlertsClient(transport, alerts_service_name(cluster)).cast_fault(fault=encode_fault(fault))
        return True
    except (RpcError, TimeoutError) as exc:
        log.warning("fault_not_reported", reason=type(exc).__name__, fault=fault.summary)
        return False
    finally:
        await transport.close()
