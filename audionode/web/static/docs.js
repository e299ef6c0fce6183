// Renders /openapi.json as a page: operations by tag, their parameters, bodies and replies.
// Dependency-free on purpose: the node serves it itself (no CDN; nodes often run offline).
"use strict";

function refName(ref) { return ref.split("/").pop(); }

// A schema as a nested list; $refs are expanded once per branch (no endless recursion).
function schemaView(spec, schema, seen) {
  seen = seen || new Set();
  if (!schema) return el("span", { class: "dim" }, "any");
  if (schema.$ref) {
    const name = refName(schema.$ref);
    if (seen.has(name)) return el("code", {}, name);
    const inner = new Set(seen); inner.add(name);
    return el("span", {}, el("code", {}, name), " ",
              schemaView(spec, spec.components.schemas[name], inner));
  }
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (schema[key]) {
      const list = el("ul");
      for (const s of schema[key]) list.append(el("li", {}, schemaView(spec, s, seen)));
      return el("span", {}, key === "allOf" ? "all of:" : "one of:", list);
    }
  }
  if (schema.type === "object" && schema.properties) {
    const list = el("ul");
    const required = new Set(schema.required || []);
    for (const [name, prop] of Object.entries(schema.properties)) {
      list.append(el("li", {}, el("code", {}, name), required.has(name) ? el("span", { class: "req" }, " required") : null,
                     ": ", schemaView(spec, prop, seen)));
    }
    return el("span", { class: "schema" }, "object", list);
  }
  if (schema.type === "array") return el("span", {}, "array of ", schemaView(spec, schema.items, seen));
  const bits = [];
  if (schema.enum) bits.push("one of " + schema.enum.map((v) => JSON.stringify(v)).join(", "));
  for (const k of ["minimum", "maximum", "minLength", "maxLength", "pattern"]) {
    if (schema[k] !== undefined) bits.push(`${k} ${schema[k]}`);
  }
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || (schema.enum ? "" : "any"));
  return el("span", {}, el("code", {}, type), bits.length ? el("span", { class: "dim" }, " (" + bits.join(", ") + ")") : null);
}

function operationView(spec, method, path, op) {
  const body = el("div");
  if (op.parameters && op.parameters.length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "")));
    for (const p of op.parameters) {
      table.append(el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
                      el("td", {}, p.in), el("td", {}, schemaView(spec, p.schema)), el("td", { class: "dim" }, p.description || "")));
    }
    body.append(table);
  }
  if (op.requestBody) {
    const media = op.requestBody.content["application/json"];
    body.append(el("div", {}, el("b", {}, "body"), op.requestBody.required ? el("span", { class: "req" }, " required") : null, ": ",
                   schemaView(spec, media && media.schema)));
  }
  const replies = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "reply")));
  for (const [status, reply] of Object.entries(op.responses || {})) {
    const content = reply.content || {};
    const type = Object.keys(content)[0];
    replies.append(el("tr", {}, el("td", {}, status),
                      el("td", {}, reply.description || "", type ? el("div", {}, el("span", { class: "dim" }, type + " "), schemaView(spec, content[type].schema)) : null)));
  }
  body.append(replies);
  const auth = op.security && op.security.length === 0 ? el("span", { class: "dim" }, " public") : null;
  return el("details", { class: "op", "data-operation": op.operationId, id: op.operationId },
            el("summary", {}, el("span", { class: `method m-${method}` }, method.toUpperCase()), " ",
               el("code", {}, path), " ", el("span", { class: "dim" }, op.summary || ""), auth,
               op["x-websocket"] ? el("span", { class: "dim" }, " websocket") : null),
            body);
}

async function main() {
  const doc = document.getElementById("doc");
  let spec;
  try {
    const reply = await fetch("/openapi.json");
    spec = await reply.json();
  } catch (e) {
    doc.replaceChildren(el("p", { class: "error" }, "could not load /openapi.json: " + e));
    return;
  }
  document.getElementById("version").textContent = "v" + spec.info.version;
  doc.replaceChildren(el("p", {}, spec.info.description),
                      el("p", { class: "dim" }, "Authentication: header Authorization: <password> (or Bearer <password>) on every operation not marked public."));
  const byTag = new Map();
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(spec, method, path, op));
    }
  }
  let count = 0;
  for (const tag of spec.tags.map((t) => t.name)) {
    const ops = byTag.get(tag) || [];
    count += ops.length;
    const about = spec.tags.find((t) => t.name === tag);
    doc.append(el("section", { "data-tag": tag }, el("h2", {}, tag, " ", el("span", { class: "dim" }, about ? about.description : "")), ...ops));
  }
  doc.setAttribute("data-operations", String(count));
}

main();
