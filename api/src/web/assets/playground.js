// The playground: sends the conversation to POST /chat (Accept: text/event-stream) and streams
// the answer into #answer as its events arrive (fetch + a ReadableStream reader; SSE framing:
// `data: {json}` events separated by a blank line, `:` comment lines are keep-alives).
// Events: StreamChunk {delta, finish_reason, selected_uid, ...} and StreamError {error}.
"use strict";

const KEY_STORAGE = "sn1.apiKey";
const $ = (id) => document.getElementById(id);

/** Past turns of this conversation: [{role, content}], sent with every prompt. */
const turns = [];
let inFlight = null;

/** What a person should read for an HTTP error before the stream started. */
function explain(status, body, retryAfter) {
  const message = (body && body.error && (body.error.message || body.error)) || "";
  const retry = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again shortly.";
  switch (status) {
    case 401:
      return "The API key was refused. Paste the key the gateway printed at start (or its EXPECTED_ACCESS_KEY) above.";
    case 429:
      return `Too many requests for this key right now.${retry}`;
    case 503:
      return `The gateway is busy or cannot reach its job queue.${retry}${message ? ` (${message})` : ""}`;
    case 504:
      return `No worker took the request in time: the workers may be restarting or all busy.${retry}`;
    case 400:
    case 422:
      return `The gateway refused this request: ${message || "invalid request"}.`;
    case 413:
      return "The conversation is too long for the gateway: start a new conversation.";
    default:
      return `The gateway answered ${status}${message ? `: ${message}` : ""}.`;
  }
}

function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = !text;
}

/** `exclude` as typed: numbers become uids, anything else a hotkey. */
function parseExclude(text) {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((t) => (/^\d+$/.test(t) ? Number(t) : t));
}

function renderTurns() {
  const box = $("conversation");
  box.replaceChildren(
    ...turns.map((t) => {
      const el = document.createElement("article");
      el.className = `turn ${t.role}`;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = t.role === "user" ? "You" : "Miner";
      el.append(who, document.createTextNode(t.content));
      return el;
    }),
  );
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
  $("answer").setAttribute("aria-busy", String(busy));
}

/** Splits SSE text into complete events; returns [events, rest]. */
function takeEvents(buffer) {
  const events = [];
  let at;
  buffer = buffer.replace(/\r\n/g, "\n");
  while ((at = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, at);
    buffer = buffer.slice(at + 2);
    const data = block
      .split("\n")
      .filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, ""))
      .join("\n");
    if (data) events.push(data);
  }
  return [events, buffer];
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(2)} s`;
}

async function ask(event) {
  event.preventDefault();
  // One request at a time: Ctrl+Enter (requestSubmit) and implicit submission do not look at
  // the disabled Send button, and two streams would interleave in #answer.
  if (inFlight) return;
  const key = $("api-key").value.trim();
  const prompt = $("prompt").value.trim();
  if (!key) return showError("Enter the API key first.") || $("api-key").focus();
  if (!prompt) return showError("Type a prompt first.") || $("prompt").focus();
  localStorage.setItem(KEY_STORAGE, key);
  showError("");

  const messages = [...turns, { role: "user", content: prompt }];
  const body = {
    roles: messages.map((m) => m.role),
    messages: messages.map((m) => m.content),
    k: Number($("k").value) || 5,
    timeout: Number($("timeout").value) || 15,
    sampling_mode: $("sampling").value,
    exclude: parseExclude($("exclude").value),
    stream: true,
  };
  if ($("strategy").value !== "first") body.prefer = $("strategy").value;

  const answer = $("answer");
  const meta = $("meta");
  answer.textContent = "";
  meta.textContent = "Asking the miners…";
  setBusy(true);
  const controller = new AbortController();
  inFlight = controller;
  const started = performance.now();
  let firstChunkAt = null;
  let text = "";
  let uid = null;
  let requestId = null;
  let ended = null; // "finished" | "error"

  try {
    const response = await fetch("/chat", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "text/event-stream",
        Authorization: `Bearer ${key}`,
      },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    requestId = response.headers.get("x-request-id");
    if (!response.ok) {
      const detail = await response.json().catch(() => null);
      showError(explain(response.status, detail, response.headers.get("retry-after")));
      meta.textContent = "";
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let events;
      [events, buffer] = takeEvents(buffer + value);
      for (const data of events) {
        let e;
        try {
          e = JSON.parse(data);
        } catch {
          continue;
        }
        if (e.error !== undefined) {
          ended = "error";
          showError(
            `The answer stopped: ${e.error}.` +
              (text ? " What is shown is incomplete." : ""),
          );
          continue;
        }
        if (typeof e.selected_uid === "number") uid = e.selected_uid;
        if (e.delta) {
          if (firstChunkAt === null) firstChunkAt = performance.now();
          text += e.delta;
          answer.append(document.createTextNode(e.delta));
        }
        if (e.finish_reason === "finished") ended = "finished";
      }
    }
    if (ended === null) {
      showError("The connection closed before the answer was complete. What is shown is incomplete.");
    }
  } catch (err) {
    if (err.name === "AbortError") {
      showError("Stopped. What is shown is incomplete.");
    } else {
      showError("Could not reach the gateway — is it running? (" + err.message + ")");
    }
  } finally {
    inFlight = null;
    setBusy(false);
    const total = performance.now() - started;
    const parts = [];
    if (uid !== null) parts.push(uid < 0 ? "echo" : `miner uid ${uid}`);
    if (firstChunkAt !== null) parts.push(`first chunk after ${seconds(firstChunkAt - started)}`);
    parts.push(`total ${seconds(total)}`);
    meta.replaceChildren(document.createTextNode(parts.join(" · ")));
    if (requestId) {
      const link = document.createElement("a");
      link.href = `/api/requests/${encodeURIComponent(requestId)}`;
      link.id = "request-link";
      link.textContent = requestId;
      meta.append(document.createTextNode(" · request "), link);
    }
    if (ended === "finished") {
      turns.push({ role: "user", content: prompt }, { role: "assistant", content: text });
      renderTurns();
      $("prompt").value = "";
    }
  }
}

function init() {
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) $("api-key").value = saved;
  $("ask").addEventListener("submit", ask);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      if (!inFlight) $("ask").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => inFlight && inFlight.abort());
  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    $("api-key").focus();
  });
  $("new-conversation").addEventListener("click", () => {
    turns.length = 0;
    renderTurns();
    $("answer").textContent = "";
    $("meta").textContent = "";
    showError("");
    $("prompt").focus();
  });
}

document.addEventListener("DOMContentLoaded", init);
