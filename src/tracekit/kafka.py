"""Scope the processing of a Kafka record explicitly.

The Kafka integrations (kafka-python, confluent-kafka, aiokafka) make a ``process {topic}``
span for each record a consumer hands out one at a time: it starts when the record is
returned and ends when the application next receives from a consumer in the same context
(or closes it). When that is not the shape of the code (records of a batch from
``poll()``, ``consume()`` or ``getmany()``; work handed to a thread or a task; a
``break`` out of the loop followed by other work), say where processing starts and ends::

    import tracekit.kafka

    for records in consumer.poll(timeout_ms=1000).values():
        for record in records:
            with tracekit.kafka.process(record):
                handle(record)

Inside the block the ``process {topic}`` span is current, its parent the producer's
context from the record's headers; an exception leaving the block marks it ERROR (and is
re-raised). For a record that already has its automatic process span, the block takes
that span over and ends it on exit. Works with records of all three clients.
"""

from tracekit._messaging import process

__all__ = ["process"]
