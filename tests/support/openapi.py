"""Checking an HTTP request against the OpenAPI document of /v1 (api/openapi.py), as a gateway
that imports the document would: its operation (path template and method), its security, its
parameters, and its body (JSON, or a multipart form read as OpenAPI serialises one)."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:seedream:openapi"


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


class RequestChecker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        server = urlsplit(spec["servers"][0]["url"]).path.rstrip("/")
        self.prefix = server

    def _errors(self, pointer: str, value: Any) -> list[str]:
        schema = {"$ref": f"{SPEC_URI}#/{pointer}"}
        validator = Draft202012Validator(schema, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in
                validator.iter_errors(value)]  # fmt: skip

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(the path template, its operation, the path parameters) for a request's path."""
        relative = path.removeprefix(self.prefix)
        for template, item in self.spec["paths"].items():
            regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            match = re.match(regex, relative)
            if match and method.lower() in item:
                return template, item[method.lower()], match.groupdict()
        raise AssertionError(f"{method} {path}: no such operation in the document")

    def check(self, request: httpx.Request) -> str:
        """Every way ``request`` departs from its operation (AssertionError), else the
        operation's id."""
        url = urlsplit(str(request.url))
        template, operation, path_params = self.operation(request.method, url.path)
        problems: list[str] = []
        item = self.spec["paths"][template]
        parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
        query = dict(parse_qsl(url.query))
        for parameter in parameters:
            if "$ref" in parameter:
                parameter = self._resolve(parameter["$ref"])
            name, where = parameter["name"], parameter["in"]
            value: Any = {
                "path": path_params,
                "query": query,
                "header": request.headers,
            }[where].get(name)
            if value is None:
                if parameter.get("required"):
                    problems.append(f"missing {where} parameter {name}")
                continue
            if parameter["schema"].get("type") == "integer" and value.lstrip("-").isdigit():
                value = int(value)
            problems += [f"{where} {name}: {e}" for e in self._errors_for(parameter, value)]
        for name in query:
            if not any(p.get("name") == name for p in parameters):
                problems.append(f"undocumented query parameter {name}")
        security = operation.get("security", self.spec.get("security", []))
        if security and not request.headers.get("Authorization", "").startswith("Bearer "):
            problems.append("no bearer key")
        problems += self._body_problems(template, operation, request)
        assert not problems, f"{request.method} {url.path} ({operation['operationId']}): {problems}"
        return str(operation["operationId"])

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return dict(node)

    def _errors_for(self, parameter: dict[str, Any], value: Any) -> list[str]:
        validator = Draft202012Validator(parameter["schema"], registry=self.registry)
        return [e.message for e in validator.iter_errors(value)]

    def _body_problems(
        self, template: str, operation: dict[str, Any], request: httpx.Request
    ) -> list[str]:
        body = operation.get("requestBody")
        content = request.content
        if body is None:
            return ["a body where none is described"] if content else []
        if not content:
            return ["no body"] if body.get("required") else []
        media_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in body["content"]:
            return [f"Content-Type {media_type!r} is not one of {list(body['content'])}"]
        pointer = _pointer(
            "paths", template, request.method.lower(), "requestBody", "content", media_type
        )
        if media_type == "application/json":
            return self._errors(pointer + "/schema", json.loads(content))
        form = self._form(request, pointer)
        return self._errors(pointer + "/schema", form)

    def _form(self, request: httpx.Request, pointer: str) -> dict[str, Any]:
        """A multipart body as the object OpenAPI's form serialisation describes: each text
        field typed by its schema, each file a (binary) string, repeated names a list."""
        head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            head + request.content
        )
        schema = self._resolve(f"#/{pointer}/schema")
        if "$ref" in schema:
            schema = self._resolve(schema["$ref"])
        properties = schema["properties"]
        fields: dict[str, list[Any]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes), f"part {name} is not a leaf"
            if part.get_filename() is not None:
                value: Any = "<binary>"
            else:
                value = _typed(payload.decode(), properties.get(name, {}))
            fields.setdefault(str(name), []).append(value)
        return {
            name: values if properties.get(name, {}).get("type") == "array" else values[0]
            for name, values in fields.items()
        }


def _typed(text: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text
