"""State aggregator (:5003): one view of every device of the instance.

It follows every handler service's event stream, keeps the device registry and a TTL cache of
the latest state, re-publishes a merged event stream, and routes commands to the owning
handler. See docs/rest-api.md ("State aggregator") and docs/architecture.md.
"""
