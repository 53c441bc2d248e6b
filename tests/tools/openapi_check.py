#!/usr/bin/env python3
"""Checks the aggregator's OpenAPI 3.0 description, and live responses against it.

    openapi_check.py --spec-only --spec FILE_OR_URL
    openapi_check.py --base-url URL [--token TOKEN] [--spec FILE_OR_URL] --cases FILE
    openapi_check.py --base-url URL [--token TOKEN] --get STATUS PATH [--get STATUS PATH ...]
    openapi_check.py --base-url URL --validate SCHEMA|PATH FILE
        a JSON document (e.g. a doc example) against #/components/schemas/SCHEMA, or against the
        200 answer of GET PATH; no requests besides fetching the description

The spec check: every operation has a unique camelCase operationId, a 2xx (or 101) and a 4xx
response; every $ref resolves; path templates and path parameters agree; every schema converts.

The live check GETs each case and checks that the status is the expected one and is documented
for the operation, that required response headers are there, that the Content-Type is one the
response documents (no body where it documents none), and validates JSON bodies against the
documented schema. OpenAPI 3.0 schemas become JSON Schema (draft 7): nullable allows null,
#/components/schemas refs resolve, allOf members merge, format and example are ignored, and every
object schema that lists properties is closed (additionalProperties: false unless it says
otherwise), so a field the spec does not list fails.

Without --spec the description is fetched from <base-url>/api/v1/openapi.json: the one the
running binary embeds. --cases is a JSON array of objects:
    {"path": "/api/v1/posts/bamako?format=csv", "status": 200,
     "token": null,          # optional: null = no Authorization header; a string = that token
     "headers": {...},       # optional: extra request headers
     "revalidate": true,     # optional: GET once, then again with If-None-Match: <its ETag>
     "websocket": true}      # optional: send a WebSocket upgrade (expects 101, or a refusal)
Output: one line per request; a failure's lines name the JSON path of the offending value and
the schema rule with its place in the spec. Exit status: 0 all good, 1 a check failed, 2 usage
or setup error (spec unreadable, jsonschema missing).

Needs Python 3 and jsonschema (Debian: python3-jsonschema, installed by tools/bootstrap).
"""

import argparse
import base64
import copy
import hashlib
import http.client
import json
import os
import re
import sys
import urllib.parse

try:
    import jsonschema
except ImportError:  # pragma: no cover - depends on the machine
    print("openapi_check: the Python module jsonschema is missing; run tools/bootstrap "
          "(Debian package python3-jsonschema)", file=sys.stderr)
    sys.exit(2)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# OpenAPI 3.0 Schema Object keywords this converter understands.
KEPT = {"type", "enum", "required", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems",
        "maxItems", "uniqueItems", "minProperties", "maxProperties", "multipleOf", "title"}
IGNORED = {"format", "example", "default", "description", "readOnly", "writeOnly", "xml", "externalDocs",
           "deprecated", "discriminator"}
HANDLED = {"$ref", "allOf", "oneOf", "anyOf", "not", "properties", "additionalProperties", "items", "nullable",
           "exclusiveMinimum", "exclusiveMaximum"}


class SpecError(Exception):
    pass


def pointer_escape(key):
    return str(key).replace("~", "~0").replace("/", "~1")


def json_path(parts):
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += "[%d]" % p
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(p)):
            out += "." + str(p)
        else:
            out += "[%s]" % json.dumps(p)
    return out


def short(text, limit=160):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Spec:
    def __init__(self, doc):
        if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
            raise SpecError("not an OpenAPI document (no paths)")
        self.doc = doc
        self.definitions = {}
        self._converting = set()
        self._routes = []
        for template, item in doc["paths"].items():
            literal = [s for s in template.split("/") if s and not s.startswith("{")]
            regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            self._routes.append((len(literal), template, re.compile(regex), item))
        self._routes.sort(key=lambda r: -r[0])  # literal segments win over templates

    # -- references ---------------------------------------------------------------------
    def resolve(self, ref):
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise SpecError("unsupported $ref %r (only local #/... refs)" % (ref,))
        node = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SpecError("$ref %s does not resolve" % ref)
        return node

    def deref(self, node):
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise SpecError("$ref loop at %s" % ref)
            seen.add(ref)
            node = self.resolve(ref)
        return node

    def operations(self):
        for template, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    yield template, method, item[method]

    def match(self, method, path):
        for _, template, regex, item in self._routes:
            if regex.match(path) and method in item:
                return template, item[method]
        return None, None

    # -- OpenAPI 3.0 schema -> JSON Schema draft 7 --------------------------------------
    def json_schema(self, schema, origin):
        """A self-contained draft-7 schema for `schema` (found at `origin` in the spec)."""
        root = self._convert(schema, origin)
        return {"allOf": [root], "definitions": self.definitions}

    def _ref_to_definition(self, ref):
        prefix = "#/components/schemas/"
        if not ref.startswith(prefix):
            return None
        name = ref[len(prefix):]
        if name not in self.definitions and name not in self._converting:
            self._converting.add(name)
            try:
                self.definitions[name] = self._convert(self.resolve(ref), ref)
            finally:
                self._converting.discard(name)
        return {"$ref": "#/definitions/" + pointer_escape(name)}

    def _flatten_all_of(self, node, origin):
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for i, member in enumerate(node["allOf"]):
            member = self.deref(member)
            if not isinstance(member, dict):
                raise SpecError("%s/allOf/%d: not a schema" % (origin, i))
            if "allOf" in member:
                member = self._flatten_all_of(member, "%s/allOf/%d" % (origin, i))
            for key, value in member.items():
                if key == "properties":
                    props = merged.setdefault("properties", {})
                    for name, sub in value.items():
                        props[name] = {"allOf": [props[name], sub]} if name in props else sub
                elif key == "required":
                    req = merged.setdefault("required", [])
                    req.extend(r for r in value if r not in req)
                elif key in IGNORED:
                    merged.setdefault(key, value)
                elif key not in merged:
                    merged[key] = value
                elif merged[key] != value:
                    raise SpecError("%s: allOf members disagree on %r" % (origin, key))
        return merged

    def _convert(self, node, origin):
        if not isinstance(node, dict):
            raise SpecError("%s: a schema must be an object" % origin)
        if "$ref" in node:  # OpenAPI 3.0: a $ref's siblings are ignored
            as_definition = self._ref_to_definition(node["$ref"])
            if as_definition is not None:
                return as_definition
            return self._convert(self.resolve(node["$ref"]), node["$ref"])
        if "allOf" in node:
            node = self._flatten_all_of(node, origin)
        out = {"x-origin": origin}
        for key, value in node.items():
            if key in KEPT:
                out[key] = copy.deepcopy(value)
            elif key in IGNORED or key == "nullable" or key.startswith("x-"):
                pass
            elif key == "properties":
                out["properties"] = {name: self._convert(sub, "%s/properties/%s" % (origin, pointer_escape(name)))
                                     for name, sub in value.items()}
            elif key == "additionalProperties":
                out[key] = value if isinstance(value, bool) else self._convert(value, origin + "/" + key)
            elif key in ("items", "not"):
                out[key] = self._convert(value, origin + "/" + key)
            elif key in ("oneOf", "anyOf"):
                out[key] = [self._convert(sub, "%s/%s/%d" % (origin, key, i)) for i, sub in enumerate(value)]
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):  # booleans in 3.0, numbers in draft 7
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if value is True and bound in node:
                    out[key] = node[bound]
            else:
                raise SpecError("%s: schema keyword %r is not supported by this checker" % (origin, key))
        if "exclusiveMinimum" in out:
            out.pop("minimum", None)
        if "exclusiveMaximum" in out:
            out.pop("maximum", None)
        # Closed world: an object schema that lists its properties allows no others.
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        if node.get("nullable") is True:
            if "type" in out:
                out["type"] = [out["type"], "null"]
                if "enum" in out and None not in out["enum"]:
                    out["enum"] = out["enum"] + [None]
            else:
                out = {"x-origin": origin, "anyOf": [out, {"type": "null"}]}
        return out


# -- the spec itself ---------------------------------------------------------------------------
def check_spec(spec):
    """Problems with the description itself, as a list of strings."""
    problems = []
    doc = spec.doc
    if not str(doc.get("openapi", "")).startswith("3.0"):
        problems.append("openapi: %r is not 3.0.x" % doc.get("openapi"))

    def walk_refs(node, where):
        if isinstance(node, dict):
            if "$ref" in node:
                try:
                    spec.resolve(node["$ref"])
                except SpecError as e:
                    problems.append("%s: %s" % (where, e))
            for k, v in node.items():
                walk_refs(v, where + "/" + pointer_escape(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk_refs(v, "%s/%d" % (where, i))

    walk_refs(doc, "#")
    seen_ids = {}
    count = 0
    roots = []
    for template, method, op in spec.operations():
        count += 1
        where = "%s %s" % (method.upper(), template)
        op_id = op.get("operationId")
        if not op_id:
            problems.append("%s: no operationId" % where)
        elif not re.fullmatch(r"[a-z][A-Za-z0-9]*", op_id):
            problems.append("%s: operationId %r is not camelCase" % (where, op_id))
        elif op_id in seen_ids:
            problems.append("%s: operationId %r is also used by %s" % (where, op_id, seen_ids[op_id]))
        else:
            seen_ids[op_id] = where
        codes = [str(c) for c in op.get("responses", {})]
        if not any(c == "101" or (c[0] == "2") for c in codes):
            problems.append("%s: no 2xx (or 101) response" % where)
        if not any(c[0] == "4" for c in codes):
            problems.append("%s: no 4xx response" % where)
        declared = set()
        for p in list(doc["paths"][template].get("parameters", [])) + list(op.get("parameters", [])):
            try:
                p = spec.deref(p)
            except SpecError:
                continue
            if p.get("in") == "path":
                declared.add(p.get("name"))
        in_template = set(re.findall(r"\{([^/}]+)\}", template))
        for name in sorted(in_template - declared):
            problems.append("%s: path parameter {%s} is not declared" % (where, name))
        for name in sorted(declared - in_template):
            problems.append("%s: path parameter %r is not in the path" % (where, name))
        for code, response in op.get("responses", {}).items():
            try:
                response = spec.deref(response)
                for media, body in (response.get("content") or {}).items():
                    if "schema" in body:
                        origin = "#/paths/%s/%s/responses/%s/content/%s/schema" % (
                            pointer_escape(template), method, code, pointer_escape(media))
                        roots.append(spec.json_schema(body["schema"], origin)["allOf"][0])
            except SpecError as e:
                problems.append("%s: response %s: %s" % (where, code, short(e, 300)))
    try:  # every converted schema at once: one pass over the definitions
        jsonschema.Draft7Validator.check_schema({"anyOf": roots, "definitions": spec.definitions})
    except jsonschema.exceptions.SchemaError as e:
        problems.append("schema at %s: %s" % (json_path(e.absolute_path), short(e.message, 300)))
    return count, problems


# -- live requests ------------------------------------------------------------------------------
class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body


def http_get(base, path, headers, timeout):
    parts = urllib.parse.urlsplit(base)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", (parts.path.rstrip("/") + path) or "/", headers=headers)
        resp = conn.getresponse()
        # A 101 hands the connection to another protocol: there is no HTTP body to read.
        body = b"" if resp.status == 101 else resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def load_spec(source, base, token, timeout):
    if source and not re.match(r"https?://", source):
        with open(source, encoding="utf-8") as f:
            return json.load(f)
    if source:
        parts = urllib.parse.urlsplit(source)
        base = "%s://%s" % (parts.scheme, parts.netloc)
        path = parts.path + ("?" + parts.query if parts.query else "")
    else:
        path = "/api/v1/openapi.json"
    headers = {"Authorization": "Bearer " + token} if token else {}
    reply = http_get(base, path, headers, timeout)
    if reply.status != 200:
        raise SpecError("GET %s%s answered %d" % (base, path, reply.status))
    return json.loads(reply.body.decode("utf-8"))


def media_type(value):
    fields = [f.strip() for f in value.split(";")]
    params = set()
    for f in fields[1:]:
        if "=" in f:
            k, v = f.split("=", 1)
            params.add((k.strip().lower(), v.strip().strip('"').lower()))
    return fields[0].lower(), params


def describe_errors(validator, instance):
    """Lines naming each offending value by JSON path and the rule it breaks."""
    return describe(list(validator.iter_errors(instance)))


def describe(errors, prefix=()):
    lines = []
    for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(prefix) + list(err.relative_path) if prefix else list(err.absolute_path)
        origin = err.schema.get("x-origin", "?") if isinstance(err.schema, dict) else "?"
        if err.validator == "additionalProperties" and err.validator_value is False and isinstance(err.instance, dict):
            listed = set(err.schema.get("properties", {}))
            for extra in sorted(k for k in err.instance if k not in listed):
                lines.append("%s: not in the spec (additionalProperties: false; the object is %s)"
                             % (json_path(path + [extra]), origin))
        elif err.validator == "required":
            missing = re.match(r"^'(.*)' is a required property$", err.message)
            lines.append("%s: missing (required by %s)" % (json_path(path + [missing.group(1) if missing else "?"]),
                                                           origin))
        elif err.validator in ("oneOf", "anyOf") and err.context:
            # The alternative the value came nearest to: fewest errors, then the deepest ones.
            by_alt = {}
            for sub in err.context:
                by_alt.setdefault(sub.schema_path[0], []).append(sub)
            alt, subs = min(by_alt.items(), key=lambda kv: (len(kv[1]), -max(len(s.path) for s in kv[1])))
            lines.append("%s: matches none of the %s alternatives at %s; nearest, #%s:"
                         % (json_path(path), err.validator, origin, alt))
            lines += ["  " + line for line in describe(subs, path)]
        elif err.validator == "oneOf":
            lines.append("%s: matches more than one oneOf alternative at %s" % (json_path(path), origin))
        else:
            lines.append("%s: %s %s: %s (rule at %s)" % (json_path(path), err.validator,
                                                         short(json.dumps(err.validator_value), 60),
                                                         short(err.message), origin))
    return lines


def run_case(spec, base, default_token, case, timeout):
    """(ok, line, detail lines) for one request."""
    path = case["path"]
    expected = int(case["status"])
    label = "GET %s" % short(path, 100)
    template, op = spec.match("get", urllib.parse.urlsplit(path).path)
    if op is None:
        return False, label, ["no documented GET operation matches this path"]
    op_id = op.get("operationId", template)
    headers = {"Accept": "*/*"}
    token = case.get("token", default_token)
    if token:
        headers["Authorization"] = "Bearer " + token
    headers.update(case.get("headers", {}))
    ws_key = None
    if case.get("websocket"):
        ws_key = base64.b64encode(os.urandom(16)).decode()
        headers.update({"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": ws_key})
    details = []
    try:
        if case.get("revalidate"):
            first = http_get(base, path, headers, timeout)
            etag = first.headers.get("etag")
            if not etag:
                return False, label, ["revalidate: the first GET (%d) has no ETag" % first.status]
            headers["If-None-Match"] = etag
        reply = http_get(base, path, headers, timeout)
    except (OSError, http.client.HTTPException) as e:
        return False, label, ["request failed: %s" % e]
    label = "GET %s -> %d (%s)" % (short(path, 100), reply.status, op_id)
    if reply.status != expected:
        details.append("status %d, expected %d; body: %s" % (reply.status, expected,
                                                             short(reply.body.decode("utf-8", "replace"), 200)))
    responses = op.get("responses", {})
    key = next((k for k in (str(reply.status), "%dXX" % (reply.status // 100), "default") if k in responses), None)
    if key is None:
        details.append("status %d is not documented for %s (documented: %s)"
                       % (reply.status, op_id, ", ".join(sorted(responses))))
        return False, label, details
    try:
        response = spec.deref(responses[key])
    except SpecError as e:
        return False, label, details + [str(e)]
    for name, header in (response.get("headers") or {}).items():
        header = spec.deref(header)
        if header.get("required") and name.lower() not in reply.headers:
            details.append("header %s is documented as required for %s but missing" % (name, key))
    if ws_key and reply.status == 101:
        accept = base64.b64encode(hashlib.sha1((ws_key + WS_GUID).encode()).digest()).decode()
        if reply.headers.get("sec-websocket-accept") != accept:
            details.append("Sec-WebSocket-Accept %r does not answer the key" % reply.headers.get("sec-websocket-accept"))
    content = response.get("content") or {}
    ctype = reply.headers.get("content-type")
    if not content:
        if reply.body:
            details.append("%d bytes of body (%s), but response %s documents no content"
                           % (len(reply.body), ctype, key))
        return not details, label, details
    if not ctype:
        return False, label, details + ["no Content-Type; documented: %s" % ", ".join(content)]
    got_type, got_params = media_type(ctype)
    chosen = None
    for documented in content:
        doc_type, doc_params = media_type(documented)
        if doc_type == got_type and doc_params <= got_params:
            chosen = documented
            break
    if chosen is None:
        return False, label, details + ["Content-Type %r is not documented for %s (documented: %s)"
                                        % (ctype, key, ", ".join(content))]
    label += " " + got_type
    if got_type == "application/json" or got_type.endswith("+json"):
        try:
            body = json.loads(reply.body.decode("utf-8"))
        except ValueError as e:
            return False, label, details + ["body is not JSON: %s" % e]
        schema = content[chosen].get("schema")
        if schema is not None:
            origin = "#/paths/%s/get/responses/%s/content/%s/schema" % (
                pointer_escape(template), key, pointer_escape(chosen))
            try:
                validator = jsonschema.Draft7Validator(spec.json_schema(schema, origin))
                details += describe_errors(validator, body)
            except SpecError as e:
                details.append("schema: %s" % e)
    else:
        try:
            reply.body.decode("utf-8")
        except UnicodeDecodeError:
            details.append("body is not UTF-8 text")
    return not details, label, details


def validate_document(spec, name, path):
    """0 when the JSON in `path` is valid, 1 otherwise. `name` is a component schema (Alarm), or a
    path (/api/v1/alarms) whose GET's 200 application/json answer it must be."""
    try:
        if name.startswith("/"):
            template, op = spec.match("get", name)
            if op is None:
                raise SpecError("no documented GET operation matches %s" % name)
            response = spec.deref(op.get("responses", {}).get("200", {}))
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if schema is None:
                raise SpecError("GET %s documents no 200 application/json answer" % template)
            ref = "#/paths/%s/get/responses/200/content/application~1json/schema" % pointer_escape(template)
        else:
            ref = "#/components/schemas/" + name
            schema = spec.resolve(ref)
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError, SpecError) as e:
        print("FAIL %s: %s" % (name, e))
        return 1
    validator = jsonschema.Draft7Validator(spec.json_schema(schema, ref))
    lines = describe_errors(validator, document)
    for line in lines:
        print("FAIL " + line)
    if not lines:
        print("ok   %s: valid against %s" % (path, ref))
    return 1 if lines else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", help="the OpenAPI description: a file or URL (default: <base-url>/api/v1/openapi.json)")
    ap.add_argument("--spec-only", action="store_true", help="check the description itself, make no requests")
    ap.add_argument("--base-url", help="e.g. http://127.0.0.1:8080")
    ap.add_argument("--token", help="bearer token sent unless a case says otherwise")
    ap.add_argument("--cases", help="JSON file: an array of {path, status, token?, headers?, revalidate?, websocket?}")
    ap.add_argument("--get", nargs=2, action="append", default=[], metavar=("STATUS", "PATH"),
                    help="one request and its expected status (repeatable)")
    ap.add_argument("--validate", nargs=2, metavar=("SCHEMA", "FILE"),
                    help="validate the JSON in FILE against #/components/schemas/SCHEMA, make no requests")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    if not args.spec_only and not args.base_url:
        ap.error("--base-url is needed (or --spec-only)")
    if args.spec_only and not args.spec and not args.base_url:
        ap.error("--spec-only needs --spec or --base-url")
    try:
        spec = Spec(load_spec(args.spec, args.base_url, args.token, args.timeout))
    except (OSError, ValueError, SpecError, http.client.HTTPException) as e:
        print("openapi_check: cannot load the description: %s" % e, file=sys.stderr)
        return 2

    if args.validate:
        return validate_document(spec, *args.validate)

    failures = 0
    n_ops, problems = check_spec(spec)
    for p in problems:
        print("FAIL spec: %s" % p)
    failures += len(problems)
    if not problems:
        print("ok   spec: %d operations, each with a unique operationId, a success and a 4xx response" % n_ops)
    if args.spec_only:
        return 1 if failures else 0

    cases = []
    if args.cases:
        try:
            with open(args.cases, encoding="utf-8") as f:
                cases = json.load(f)
        except (OSError, ValueError) as e:
            print("openapi_check: cannot read %s: %s" % (args.cases, e), file=sys.stderr)
            return 2
    cases += [{"status": int(s), "path": p} for s, p in args.get]
    if not cases:
        ap.error("no requests: give --cases or --get")
    for case in cases:
        ok, line, details = run_case(spec, args.base_url.rstrip("/"), args.token, case, args.timeout)
        note = ""
        if case.get("token", args.token) != args.token:
            note = " [no token]" if case.get("token") is None else " [other token]"
        if case.get("websocket"):
            note += " [upgrade]"
        if case.get("revalidate"):
            note += " [If-None-Match]"
        print("%s %s%s" % ("ok  " if ok else "FAIL", line, note))
        for d in details:
            print("       " + d)
        failures += 0 if ok else 1
    print("openapi_check: %d requests, %d spec problems, %d failed"
          % (len(cases), len(problems), failures - len(problems)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
