// Drives the official openai Node SDK for tests/integration/test_openai_node_sdk.py.
// Usage: node sdk.mjs '<plan JSON>', where the plan is
//   {"baseURL": ..., "apiKey": ..., "calls": [{"op": "generate", "params": {...}},
//                                             {"op": "post", "path": "/images/quote", "body": {...}},
//                                             {"op": "edit", "params": {...}, "files": [{"name",
//                                              "base64", "type"}], "single": true|false},
//                                             {"op": "generate_stream", "params": {...}},
//                                             {"op": "get", "path": "/images/generations/...",
//                                              "query": {...} (optional: the SDK's query)}]}
// A generate or edit may carry "options", the SDK's request options (e.g. {"headers":
// {"Prefer": "respond-async"}}).
// An edit's files become the SDK's uploads: one file as `image` ("single"), else a list;
// "edit_stream" is the same edit with stream: true, its result the events.
// "generate_stream" asks for stream: true and iterates the SDK's stream: its result is the
// events, in order (an error the stream ends with is the call's error, as for the others).
// Prints one JSON array: per call, {"ok": true, "result": ...} or the SDK's error as
// {"ok": false, "name", "status", "code", "param", "message"}.
import OpenAI, { toFile } from "openai";

const plan = JSON.parse(process.argv[2]);
const client = new OpenAI({ baseURL: plan.baseURL, apiKey: plan.apiKey, maxRetries: 0 });

async function run(call) {
  if (call.op === "generate") return client.images.generate(call.params, call.options);
  if (call.op === "generate_stream") {
    const events = [];
    for await (const event of await client.images.generate({ ...call.params, stream: true })) {
      events.push(event);
    }
    return events;
  }
  if (call.op === "post") return client.post(call.path, { body: call.body });
  if (call.op === "get") return client.get(call.path, call.query ? { query: call.query } : {});
  if (call.op === "models") return (await client.models.list()).data;
  if (call.op === "edit" || call.op === "edit_stream") {
    const files = await Promise.all(
      call.files.map((f) => toFile(Buffer.from(f.base64, "base64"), f.name, { type: f.type })),
    );
    const params = { ...call.params, image: call.single ? files[0] : files };
    if (call.op === "edit") return client.images.edit(params, call.options);
    const events = [];
    for await (const event of await client.images.edit({ ...params, stream: true })) {
      events.push(event);
    }
    return events;
  }
  throw new Error(`unknown op ${call.op}`);
}

const results = [];
for (const call of plan.calls) {
  try {
    results.push({ ok: true, result: await run(call) });
  } catch (error) {
    if (!(error instanceof OpenAI.APIError)) throw error;
    results.push({
      ok: false,
      name: error.constructor.name,
      status: error.status,
      code: error.code,
      param: error.param,
      message: error.message,
    });
  }
}
process.stdout.write(JSON.stringify(results));
