#!/usr/bin/env python3
"""Extracts the Terraform schema of the resources infraai emits for GCP from the
jsii manifest of the CDKTF Google provider bindings, into a small JSON file that
`infraai_gcp::schema_check` validates generated HCL against.

The Google provider binary cannot be downloaded in CI, but its schema can:
`@cdktf/provider-google` 16.12.1 is generated from hashicorp/google 6.50.0 and
its `.jsii` manifest lists every resource's arguments and nested blocks
(required or optional, types) with the provider's documentation, including the
"Possible values: [...]" enums and the duration rules.

Regenerate (python3 stdlib only, from the repository root):

    cd /tmp && npm pack @cdktf/provider-google@16.12.1 \
      && tar xzf cdktf-provider-google-16.12.1.tgz package/.jsii \
      && rm cdktf-provider-google-16.12.1.tgz
    python3 infraai-gcp/schema/extract.py /tmp/package/.jsii > infraai-gcp/schema/google-6.50.0.json
"""

import json
import re
import sys

PROVIDER_VERSION = "6.50.0"
PACKAGE = "@cdktf/provider-google"

# Terraform type -> jsii namespace of the resource (or the provider).
RESOURCES = [
    "google_compute_autoscaler",
    "google_compute_firewall",
    "google_compute_forwarding_rule",
    "google_compute_instance",
    "google_compute_instance_group_manager",
    "google_compute_instance_template",
    "google_compute_target_pool",
    "google_monitoring_alert_policy",
    "google_monitoring_notification_channel",
    "google_sql_database_instance",
]

LINK = re.compile(r"\{@link https://registry\.terraform\.io/\S+#([a-z0-9_]+) [A-Za-z0-9]+#[a-z0-9_]+\}")
POSSIBLE = re.compile(r"Possible values: (\[[^\]]*\])")


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def pascal(snake):
    return "".join(p[:1].upper() + p[1:] for p in snake.split("_"))


def snake(name):
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def docs_text(prop):
    d = prop.get("docs", {})
    return " ".join((d.get("summary", "") + " " + d.get("remarks", "")).split())


def primitive(t):
    """The HCL type of a jsii type, or None when it is a nested block."""
    if "primitive" in t:
        return {"string": "string", "number": "number", "boolean": "bool", "any": "any"}[t["primitive"]]
    if "union" in t:
        kinds = [primitive(x) for x in t["union"]["types"] if x.get("fqn") != "cdktf.IResolvable"]
        kinds = [k for k in kinds if k is not None]
        return kinds[0] if kinds else None
    if "collection" in t:
        inner = primitive(t["collection"]["elementtype"])
        if inner is None:
            return None
        return ("list(%s)" if t["collection"]["kind"] == "array" else "map(%s)") % inner
    if t.get("fqn") == "cdktf.IResolvable":
        return "any"
    return None


def block_type(t):
    """(struct fqn, max_items) of a nested block type."""
    if "fqn" in t:
        return t["fqn"], 1
    if "union" in t:
        for x in t["union"]["types"]:
            if "collection" in x:
                return x["collection"]["elementtype"]["fqn"], None
    if "collection" in t:
        return t["collection"]["elementtype"]["fqn"], None
    raise ValueError("not a block type: %r" % t)


def rules(text):
    """Value rules the provider documents in prose."""
    out = {}
    m = POSSIBLE.search(text)
    if m:
        out["enum"] = json.loads(m.group(1))
    if "multiple of a minute" in text:
        out["duration"] = {"multiple_of_secs": 60}
    elif re.search(r"must be at least 60 seconds", text):
        out["duration"] = {"min_secs": 60}
    elif "A duration in seconds with up to nine fractional digits" in text:
        out["duration"] = {}
    return out


def body(types, fqn, seen):
    if fqn in seen:
        raise ValueError("recursive block " + fqn)
    attributes, blocks = {}, {}
    for prop in types[fqn].get("properties", []):
        text = docs_text(prop)
        m = LINK.search(text)
        name = m.group(1) if m else snake(prop["name"])
        required = not prop.get("optional", False)
        kind = primitive(prop["type"])
        if kind is not None:
            attr = {"type": kind, "required": required}
            attr.update(rules(text))
            attributes[name] = attr
        else:
            inner, max_items = block_type(prop["type"])
            b = {"required": required}
            if max_items:
                b["max_items"] = max_items
            b.update(body(types, inner, seen | {fqn}))
            blocks[name] = b
    out = {}
    if attributes:
        out["attributes"] = dict(sorted(attributes.items()))
    if blocks:
        out["blocks"] = dict(sorted(blocks.items()))
    return out


def computed(types, class_fqn, config):
    """Read-only attributes of a resource (what references may read besides its arguments)."""
    known = set(config.get("attributes", {})) | set(config.get("blocks", {}))
    names = set()
    for prop in types[class_fqn].get("properties", []):
        if prop.get("static") or not prop.get("immutable") or prop["name"].endswith("Input"):
            continue
        name = snake(prop["name"])
        if name not in known:
            names.add(name)
    return sorted(names)


def main(path):
    with open(path, encoding="utf-8") as f:
        jsii = json.load(f)
    if jsii["name"] != PACKAGE:
        raise SystemExit("%s is the manifest of %s, not %s" % (path, jsii["name"], PACKAGE))
    types = jsii["types"]
    schema = {
        "source": "%s %s (.jsii), generated from hashicorp/google %s" % (PACKAGE, jsii["version"], PROVIDER_VERSION),
        "provider": body(types, "%s.provider.GoogleProviderConfig" % PACKAGE, frozenset()),
        "resources": {},
    }
    for r in RESOURCES:
        short = r[len("google_"):]
        fqn = "%s.%s.%sConfig" % (PACKAGE, camel(short), pascal(short))
        schema["resources"][r] = body(types, fqn, frozenset())
        schema["resources"][r]["computed"] = computed(types, fqn[: -len("Config")], schema["resources"][r])
    sys.stdout.write(render(schema, 0) + "\n")


def render(value, depth):
    """JSON with one line per attribute, so the file stays small and diffs stay readable."""
    if not isinstance(value, dict) or isinstance(value.get("type"), str):
        if isinstance(value, list):
            return json.dumps(value, ensure_ascii=False)
        return json.dumps(value, ensure_ascii=False)
    pad = " " * (depth + 1)
    items = ["%s%s: %s" % (pad, json.dumps(k), render(v, depth + 1)) for k, v in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: extract.py PATH/TO/.jsii > google-%s.json" % PROVIDER_VERSION)
    main(sys.argv[1])
