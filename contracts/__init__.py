"""The wire contract of each RPC service, shared by the side that serves it and the sides that call it.

One module per service (``controller``, ``portal``, ``cluster``, ``admin``, ``rooms``): the msgspec
structs of its arguments, results, error details and events, and a thin typed client (a
``client.ServiceClient``: the transport and the target it calls) that is the only
place naming its methods.  A serving method declares the same types as its parameters' annotations;
the transport converts what arrives to them before the method runs (``rpc.base.dispatch``).  This
package depends on ``msgspec`` and ``rpc`` only, so any component may import it.
"""
