"""Two instances configured with the same port: the aggregator refuses the other instance's
handler (its devices are unavailable, /health says why, the log says it once) and takes its
own as soon as it holds the port."""
from __future__ import annotations

import logging

from testkit.helpers import wait_for
from testkit.scripted_handler import ScriptedHandler
from tests.state_aggregator.conftest import service_ports


def test_a_handler_of_another_instance_is_refused_until_ours_holds_the_port(build_aggregator, scripted_serial,
                                                                             caplog):
    caplog.set_level(logging.INFO)
    services = service_ports()
    port = services["serial_handler"]["port"]
    theirs = ScriptedHandler([("living_temperature", "temperature")], port, instance_id="other_hub").start()
    try:
        theirs.set_state("living_temperature", temperature=99)
        under_test = build_aggregator(services)
        reason = (f"http://127.0.0.1:{port} belongs to instance 'other_hub', not 'sensor_hub_01' "
                  "(two instances configured with the same port?)")
        health = wait_for(lambda: (body := under_test.get("/health").json())["services"]["serial_handler"]["status"]
                          == reason and body, 15, message="the refusal in /health")
        assert f"serial_handler: {reason}" in health["reasons"]
        assert health["services"]["serial_handler"]["stream"] is False
        follower = under_test.aggregator.clients["serial_handler"]._follower
        wait_for(lambda: follower.failures >= 5, 15, message="several refused attempts")
        temperature = under_test.listed(include="state")["living_temperature"]
        assert temperature["online"] is False and temperature["reason"] == reason
        assert temperature["state"] == {}  # nothing the other instance said was taken
        refusals = [r.getMessage() for r in caplog.records if "other_hub" in r.getMessage()]
        assert len([m for m in refusals if m.startswith("serial_handler is down")]) == 1, refusals  # once
        assert len([m for m in refusals if m.startswith("event stream serial_handler refused")]) == 1, refusals
    finally:
        theirs.stop()
        theirs.publisher.close()
    ours = scripted_serial(port)
    ours.set_state("living_temperature", temperature=21.5)
    wait_for(lambda: (d := under_test.listed(include="state")["living_temperature"])["online"]
             and d["state"] == {"temperature": 21.5}, 15, message="our own handler's devices")
    services_health = under_test.get("/health").json()["services"]
    assert services_health["serial_handler"]["status"] == "ok" and services_health["serial_handler"]["stream"]
