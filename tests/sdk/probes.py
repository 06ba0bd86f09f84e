"""Which of the newer gateway APIs the fixture's gateway has. Each probe
sends a request that cannot change anything: a create body the gateway must
refuse (vcpus 0), or a route on an id that cannot exist."""

import sdkfixture

import porthole
from porthole.sandbox import gateway_has_route


def _create_refusal(body):
    try:
        sdkfixture.ensure().client().request("POST", "/v1/sandboxes", body, timeout=30)
    except porthole.ValidationError as e:
        return e.message
    raise sdkfixture.TestFailure("probe body %r was accepted" % (body,))


def gateway_has_ids():
    return 'unknown field "id"' not in _create_refusal({"id": "sdk-probe", "vcpus": 0})


def gateway_has_images():
    return 'unknown field "image"' not in _create_refusal({"image": "sdk-probe", "vcpus": 0})


def gateway_has(route):
    """route: "stop", "start" or "ports" under /v1/sandboxes/{id}/."""
    return gateway_has_route(sdkfixture.ensure().client(), "POST",
                             "/v1/sandboxes/sdk-no-such-sandbox/" + route)
