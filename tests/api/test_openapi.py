"""GET /v1/openapi.json: a valid OpenAPI 3.1 document that describes every /v1 route and
method there is, and nothing that is not there."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from openapi_spec_validator import validate

from api import multipart
from api.openapi import ERRORS, document
from api.schemas import ImageEditRequest, ImageGenerationRequest

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

METHODS = ("get", "post", "put", "patch", "delete")
# The catch-all that answers an unknown /v1 URL with a 404 in OpenAI's shape (api/views.py).
CATCH_ALL = r"^v1/(?P<path>.*)$"


def _routes(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, object]]:
    """Every URL pattern of the project as (its route or regex, the pattern), depth first."""
    found = []
    for entry in (resolver or get_resolver()).url_patterns:
        text = str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _routes(entry, prefix + text)
        else:
            found.append((prefix + text, entry))
    return found


def _v1_routes() -> list[str]:
    """The /v1 routes, as the document spells them: relative to /v1, each parameter ``{}``."""
    routes = []
    for text, pattern in _routes():
        assert isinstance(pattern, URLPattern)
        if not text.lstrip("^").startswith("v1/") or text == CATCH_ALL:
            continue
        # A regex route under /v1 cannot be checked against a path template: use path().
        assert isinstance(pattern.pattern, RoutePattern), f"{text}: make it a path() route"
        routes.append(re.sub(r"<[^>]+>", "{}", text.removeprefix("v1")))
    return routes


def _spec_operations(spec: dict) -> set[tuple[str, str]]:
    return {
        (re.sub(r"\{[^}]+\}", "{}", path), method)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_v1_route_and_method_is_in_the_document_and_nothing_else(client):
    """Each route is probed with each method and no key: 405 means the view does not take it
    (the method is checked first, api/auth.py); anything else (401, 200) means it does."""
    served = set()
    for route in _v1_routes():
        url = "/v1" + route.replace("{}", "x")
        for method in METHODS:
            response = getattr(client, method)(url)
            if response.status_code != 405:
                served.add((route, method))
            else:
                assert response.json()["error"]["code"] == "method_not_allowed"

    assert served == _spec_operations(document())


def test_a_route_the_document_does_not_describe_fails_the_walk(settings):
    """The walk above sees routes added anywhere in the URLconf (webhooks, usage...)."""
    assert ("/images/generations/{}/cancel") in _v1_routes()
    assert "/openapi.json" in _v1_routes()


def test_the_document_is_valid_openapi_3_1():
    spec = document("https://api.example.com")

    validate(spec)
    assert spec["openapi"] == "3.1.0"
    assert spec["servers"] == [{"url": "https://api.example.com/v1"}]
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }


def test_request_bodies_are_the_pydantic_models_with_the_async_alias():
    schemas = document()["components"]["schemas"]
    generation = schemas["ImageGenerationRequest"]

    for model, name in ((ImageGenerationRequest, "ImageGenerationRequest"),
                        (ImageEditRequest, "ImageEditRequest")):  # fmt: skip
        fields = model.model_json_schema(by_alias=True)["properties"]
        assert set(schemas[name]["properties"]) == set(fields)
    assert "async" in generation["properties"] and "respond_async" not in generation["properties"]
    assert generation["required"] == ["model", "prompt"]
    assert (
        generation["properties"]["n"] | {"minimum": 1, "maximum": 10, "type": "integer"}
        == (generation["properties"]["n"])
    )
    assert generation["properties"]["prompt"]["maxLength"] == 4000
    assert generation["properties"]["quality"]["anyOf"][0]["enum"] == [
        "low", "medium", "high", "standard", "hd", "auto",
    ]  # fmt: skip


def test_the_multipart_form_types_fields_as_the_parser_does():
    form = document()["components"]["schemas"]["ImageEditForm"]["properties"]

    for name in multipart._INTEGERS:
        assert form[name]["type"] == "integer", name
    for name in multipart._NUMBERS:
        assert form[name]["type"] == "number", name
    for name in multipart._BOOLEANS:
        assert form[name]["type"] == "boolean", name
    assert form["image[]"]["type"] == "array"
    assert "images" not in form  # JSON only


def test_every_operation_documents_its_errors_in_openai_shape():
    spec = document()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or path == "/openapi.json":
                continue
            statuses = {int(s) for s in operation["responses"] if s.startswith(("4", "5"))}
            assert {401, 429} <= statuses, (path, method)
            assert statuses <= set(ERRORS), (path, method)
    for status in ERRORS:
        answer = spec["components"]["responses"][f"Error{status}"]
        assert answer["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["message", "type", "code", "param"]


def test_no_operation_documents_a_500():
    """A 500 is a bug, never an outcome: the fuzzer (tests/integration/test_openapi_fuzz.py)
    fails on one because the document has none."""
    spec = document()
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in METHODS:
                assert "500" not in operation["responses"]


def test_it_is_served_without_a_key_and_revalidated_by_its_etag(client):
    response = client.get("/v1/openapi.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Content-Security-Policy" not in response  # data, not a page
    assert response["x-request-id"].startswith("req_")
    spec = response.json()
    assert spec["servers"] == [{"url": "http://testserver/v1"}]
    assert spec["paths"]["/openapi.json"]["get"]["security"] == []

    again = client.get("/v1/openapi.json", headers={"If-None-Match": response["ETag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_a_bearer_header_does_not_matter_to_it(client):
    response = client.get("/v1/openapi.json", headers={"Authorization": "Bearer sk-wrong"})
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_are_405_in_openai_shape(client, method):
    response = getattr(client, method)("/v1/openapi.json")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_models_enum_follows_the_catalog(settings):
    import copy

    models = copy.deepcopy(settings.SEEDREAM_MODELS)
    models["seedream-house"] = copy.deepcopy(models["seedream-4-0"])
    settings.SEEDREAM_MODELS = models

    body = document()["components"]["schemas"]["ImageGenerationRequest"]
    assert "seedream-house" in body["properties"]["model"]["anyOf"][0]["enum"]
