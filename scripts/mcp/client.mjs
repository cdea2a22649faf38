// A real MCP client, the official TypeScript SDK's, driving `qbroker mcp`
// (internal/mcp/ts_test.go runs it; scripts/mcp/install.sh installs the SDK).
//
//   node client.mjs stdio <qbroker binary>   spawns `qbroker mcp` with QBROKER_ADDR,
//                                            QBROKER_TOKEN and QBROKER_GATEWAY_ADDR
//   node client.mjs stdio-local-agent <bin>  spawns `qbroker mcp` with only PATH and
//                                            QBROKER_AGENT_SOCKET: no token, no broker address;
//                                            every call goes through `qbroker agent`
//   node client.mjs http <url>               streamable HTTP, Authorization: Bearer $QBROKER_TOKEN
//   node client.mjs http-unauth <url>        connects without a token (must be refused), then
//                                            follows the 401's resource_metadata pointer
//
// It initializes, lists tools, runs a Bell pair on ionq/simulator (list_devices,
// estimate_cost, submit_circuit in OpenQASM 3, job_status until completed,
// get_result), and with QBROKER_MCP_HARDWARE=1 asks for ionq/qpu.forte-1, prints
// {"event":"approval_pending","approval_id":...} and waits for a person's approval
// (wait_for_approval) before submitting again with the approval id. Every JSON-RPC
// message both ways (and the server's stderr) is appended to $MCP_TRANSCRIPT.
// The last stdout line is a JSON summary.
import { appendFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { discoverOAuthProtectedResourceMetadata, extractResourceMetadataUrl } from "@modelcontextprotocol/sdk/client/auth.js";

const [mode, target] = process.argv.slice(2);
const transcriptPath = process.env.MCP_TRANSCRIPT;
const record = (dir, msg) => {
  if (transcriptPath) appendFileSync(transcriptPath, `${dir} ${typeof msg === "string" ? msg : JSON.stringify(msg)}\n`);
};
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (why) => {
  emit({ ok: false, error: String(why && why.stack ? why.stack : why) });
  process.exit(1);
};

const bell = `OPENQASM 3;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
`;

function transportFor() {
  if (mode === "stdio-local-agent") {
    const t = new StdioClientTransport({
      command: target,
      args: ["mcp"],
      env: { PATH: process.env.PATH ?? "", QBROKER_AGENT_SOCKET: process.env.QBROKER_AGENT_SOCKET ?? "" },
      stderr: "pipe",
    });
    t.stderr?.on("data", (d) => record("server-stderr", d.toString()));
    return t;
  }
  if (mode === "stdio") {
    const t = new StdioClientTransport({
      command: target,
      args: ["mcp"],
      env: {
        PATH: process.env.PATH ?? "",
        QBROKER_ADDR: process.env.QBROKER_ADDR ?? "",
        QBROKER_TOKEN: process.env.QBROKER_TOKEN ?? "",
        QBROKER_GATEWAY_ADDR: process.env.QBROKER_GATEWAY_ADDR ?? "",
      },
      stderr: "pipe",
    });
    t.stderr?.on("data", (d) => record("server-stderr", d.toString()));
    return t;
  }
  if (mode === "http" || mode === "http-unauth") {
    const headers = mode === "http" ? { Authorization: `Bearer ${process.env.QBROKER_TOKEN}` } : {};
    return new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
  }
  fail(`unknown mode ${mode}`);
}

// tap records every message the transport carries.
function tap(t) {
  const send = t.send.bind(t);
  t.send = (msg, opts) => {
    record("client->server", msg);
    return send(msg, opts);
  };
  return t;
}

async function call(client, name, args) {
  const res = await client.callTool({ name, arguments: args });
  if (res.isError) throw new Error(`${name} refused: ${res.content?.map((c) => c.text).join(" ")}`);
  if (!res.structuredContent) throw new Error(`${name}: no structured content`);
  return res.structuredContent;
}

async function runJob(client, args) {
  const sub = await call(client, "submit_circuit", args);
  if (sub.status !== "submitted") return sub;
  for (let i = 0; ; i++) {
    const st = await call(client, "job_status", { job_id: sub.job_id });
    if (st.status === "completed") break;
    if (st.status === "failed" || st.status === "canceled") throw new Error(`job ${sub.job_id} ${st.status}`);
    if (i > 600) throw new Error(`job ${sub.job_id} still ${st.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const res = await call(client, "get_result", { job_id: sub.job_id });
  return { ...sub, counts: res.counts, result_shots: res.shots };
}

async function main() {
  const client = new Client({ name: "qbroker-ts-test-client", version: "1.0.0" });
  const transport = tap(transportFor());
  if (mode === "http-unauth") {
    try {
      await client.connect(transport);
    } catch (e) {
      // The SDK's own OAuth discovery: the challenge's resource_metadata
      // pointer, then the RFC 9728 document it names.
      const res = await fetch(target, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      });
      const metadataURL = extractResourceMetadataUrl(res)?.href;
      const metadata = await discoverOAuthProtectedResourceMetadata(new URL(target));
      emit({ ok: true, refused: true, code: e.code, error: String(e), status: res.status, resource_metadata_url: metadataURL, metadata });
      return;
    }
    fail("connected without a token");
  }
  await client.connect(transport);
  const onmessage = transport.onmessage;
  transport.onmessage = (msg, extra) => {
    record("server->client", msg);
    onmessage?.(msg, extra);
  };

  const server = client.getServerVersion();
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  const devices = await call(client, "list_devices", {});
  const sim = devices.devices.find((d) => d.id === "ionq/simulator");
  const estimate = await call(client, "estimate_cost", { device: "ionq/qpu.forte-1", shots: 100 });
  const resources = (await client.listResources()).resources.map((r) => r.uri).sort();
  const budget = JSON.parse((await client.readResource({ uri: "qbroker://budget" })).contents[0].text);

  const bellJob = await runJob(client, { circuit: bell, format: "qasm3", device: "ionq/simulator", shots: 1000 });

  let hardware;
  if (process.env.QBROKER_MCP_HARDWARE === "1") {
    const args = { circuit: bell, format: "qasm3", device: "ionq/qpu.forte-1", shots: 100 };
    const held = await call(client, "submit_circuit", args);
    if (held.status !== "approval_pending") throw new Error(`hardware submission: ${JSON.stringify(held)}`);
    emit({ event: "approval_pending", approval_id: held.approval_id, console_url: held.console_url });
    let state;
    for (let i = 0; i < 10; i++) {
      state = await call(client, "wait_for_approval", { approval_id: held.approval_id, timeout_seconds: 10 });
      if (state.state !== "pending") break;
    }
    if (state.state !== "approved") throw new Error(`approval ended ${state.state}`);
    const job = await runJob(client, { ...args, approval_id: held.approval_id });
    hardware = { approval_id: held.approval_id, approval_state: state.state, ...job };
  }

  // A refusal comes back as a tool error with its reason, not a protocol error.
  const refused = await client.callTool({
    name: "submit_circuit",
    arguments: { circuit: bell, format: "qasm3", device: "ionq/qpu.forte-1", shots: 5000 },
  });

  await client.close();
  emit({
    ok: true,
    server,
    tools,
    resources,
    simulator: sim,
    estimate_usd: estimate.estimated_cost_usd,
    budget_limits: budget.limits.length,
    bell: bellJob,
    hardware,
    refusal: { is_error: refused.isError === true, text: refused.content?.map((c) => c.text).join(" ") },
  });
}

main().catch(fail);
