"""Writes api-docs/REFERENCE.md from api-docs/openapi.yaml (needs PyYAML):

    python3 api-docs/reference.py > api-docs/REFERENCE.md

tests/api/openapi.rs checks that every route of the server is in both documents.
"""

import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).parent
DOC = yaml.safe_load((HERE / "openapi.yaml").read_text())


def resolve(node):
    """Follows a local $ref."""
    while isinstance(node, dict) and "$ref" in node:
        target = DOC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_line(schema):
    """A one-line description of a schema: its $ref name or its type."""
    if not schema:
        return ""
    if "$ref" in schema:
        return "`" + schema["$ref"].rsplit("/", 1)[-1] + "`"
    if "oneOf" in schema:
        return " or ".join(schema_line(s) for s in schema["oneOf"])
    if "allOf" in schema:
        return " + ".join(schema_line(s) for s in schema["allOf"])
    if schema.get("type") == "object" and "properties" in schema:
        return "object: " + ", ".join(f"`{k}`" for k in schema["properties"])
    return "`" + json.dumps(schema.get("type", "any")) .strip('"') + "`"


def main(out):
    info = DOC["info"]
    out.write(f"# {info['title']} API reference\n\n")
    out.write("Generated from `openapi.yaml` by `reference.py`; the guide to every field and callback is GUIDE.md.\n\n")
    out.write(info["description"].strip() + "\n\n")
    default_security = DOC.get("security", [])
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            out.write(f"## {method.upper()} {path}\n\n{op.get('summary', '')}\n\n")
            if op.get("description"):
                out.write(op["description"].strip() + "\n\n")
            security = op.get("security", default_security)
            auth = ", ".join(next(iter(s)) for s in security) or "none"
            out.write(f"Authentication: {auth}.\n\n")
            params = [resolve(p) for p in op.get("parameters", [])]
            if params:
                out.write("| parameter | in | required | schema |\n|---|---|---|---|\n")
                for p in params:
                    desc = p.get("description", "").replace("\n", " ")
                    out.write(f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | {schema_line(p.get('schema', {}))} {desc} |\n")
                out.write("\n")
            body = op.get("requestBody")
            if body:
                for media, content in body.get("content", {}).items():
                    out.write(f"Body (`{media}`): {schema_line(content.get('schema', {}))}\n\n")
                    example = content.get("example")
                    if example is not None:
                        out.write("```json\n" + json.dumps(example, ensure_ascii=False, indent=2) + "\n```\n\n")
            out.write("| HTTP status | answer |\n|---|---|\n")
            for status, response in op.get("responses", {}).items():
                response = resolve(response)
                kinds = "; ".join(
                    f"`{media}` {schema_line(c.get('schema', {}))}" for media, c in response.get("content", {}).items()
                )
                out.write(f"| {status} | {response.get('description', '').strip()} {kinds} |\n")
            out.write("\n")
    out.write("## Callbacks\n\nWhat the platform POSTs to your URLs (signed; see GUIDE.md §7).\n\n")
    for name, item in DOC.get("webhooks", {}).items():
        op = item["post"]
        out.write(f"### {name}\n\n{op.get('summary', '')}\n\n")
        if op.get("description"):
            out.write(op["description"].strip() + "\n\n")
        for media, content in op["requestBody"]["content"].items():
            out.write(f"Body (`{media}`): {schema_line(content.get('schema', {}))}\n\n")
    out.write("## Schemas\n\n")
    for name, schema in DOC["components"]["schemas"].items():
        out.write(f"### {name}\n\n")
        if schema.get("description"):
            out.write(schema["description"].strip() + "\n\n")
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        if props:
            out.write("| field | required | schema | notes |\n|---|---|---|---|\n")
            for field, sub in props.items():
                notes = (sub.get("description") or "").replace("\n", " ")
                if "enum" in sub:
                    notes += ("; " if notes else "") + "one of " + ", ".join(f"`{v}`" for v in sub["enum"])
                if "pattern" in sub:
                    notes += f" pattern `{sub['pattern']}`"
                out.write(f"| `{field}` | {'yes' if field in required else 'no'} | {schema_line(sub)} | {notes.strip()} |\n")
            out.write("\n")
        else:
            out.write(f"{schema_line(schema)}\n\n")


if __name__ == "__main__":
    main(sys.stdout)
