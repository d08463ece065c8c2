"""What every Kafka client integration shares: the header carrier, and send, poll and process spans.

A client integration (``kafka_python``, ``confluent_kafka``, ``aiokafka``) describes its
library as data, a :class:`Producer` and a :class:`Consumer` (the names of a send call's
parameters, how the library reports a delivery, where the client id and the brokers are),
and installs the wrappers made here; sync and async wrappers share every line of logic.

* ``send {topic}``, kind PRODUCER, from the send call until the delivery report (ERROR and
  ``error.type`` when the delivery fails). The configured propagators' headers go into a
  copy of the record's headers, in the form the caller used (list, tuple or dict); headers
  with a propagation field's name already there (a consumed record sent on) are replaced,
  never duplicated, and the send span links to the context they carried.
* ``process {topic}``, kind CONSUMER, for a record handed to the application one at a time
  (iteration, confluent-kafka ``poll``, aiokafka ``getone`` and ``async for``). Its parent
  is the producer's context from the record's headers. It is the current span from the
  moment the record is handed out until the application next receives from a consumer in
  the same context, closes the consumer, or scopes the record with :func:`process`; then
  it ends and the context in force before it is restored. It never stays open across a
  receive call, and it is not carried into a context where it was not made current.
* ``poll {topic}``, kind CLIENT (a ``receive`` operation), for a batch receive (kafka-python
  ``poll``, confluent-kafka ``consume``, aiokafka ``getmany``) that returned records or
  failed: it covers the call and links to every record's creation context. Records of a
  batch get a process span only through :func:`process`.

Empty receives make no span. Nothing here runs when tracing is not configured or
OpenTelemetry's suppression key is set, and tracekit's own failures are reported through
:func:`tracekit._safety.report`, never raised into the application.
"""

from tracekit._messaging._carrier import HEADERS
from tracekit._messaging._common import Args, Client, Consumer, Kwargs, Producer, client_of, split_servers
from tracekit._messaging._consume import async_receive_one, closing, receive_batch, receive_one
from tracekit._messaging._produce import Delivery, async_send, bind_arg, rebind_arg, send
from tracekit._messaging._scope import process

__all__ = [
    "HEADERS",
    "Args",
    "Client",
    "Consumer",
    "Delivery",
    "Kwargs",
    "Producer",
    "async_receive_one",
    "async_send",
    "bind_arg",
    "client_of",
    "closing",
    "process",
    "rebind_arg",
    "receive_batch",
    "receive_one",
    "send",
    "split_servers",
]
