// The dashboard's one script (a file: the CSP allows no inline script). Every action
// works without it; it only adds copy buttons.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.copy + "-status");
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        if (status) status.textContent = "Copied to the clipboard.";
      } catch (error) {
        if (status) status.textContent = "Could not copy; select the key and copy it yourself.";
      }
    });
  }
});

// The sandbox console: with a script, a command's output is shown as it comes
// (Server-Sent Events read from a fetch); without one, the form posts as any other.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-stream]");
  const live = document.getElementById("live");
  if (!form || !live || !window.fetch || !window.TextDecoder) return;
  const part = (id) => document.getElementById(id);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    let response;
    try {
      response = await fetch(form.dataset.stream, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
      });
    } catch (error) {
      form.submit();
      return;
    }
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !response.body || !type.startsWith("text/event-stream")) {
      form.submit();  // refused before any output: the page says why
      return;
    }
    button.disabled = true;
    live.hidden = false;
    part("live-command").textContent = form.elements.command.value;
    part("live-stdout").textContent = "";
    part("live-stderr").textContent = "";
    part("live-exit").textContent = "Running…";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const handle = (block) => {
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (!data) return;
      const body = JSON.parse(data);
      if (name === "stdout" || name === "stderr") {
        part("live-" + name).textContent += body.data;
      } else if (name === "exit") {
        part("live-exit").textContent = `Exit code ${body.exitCode} after ${body.durationMs} ms` +
          (body.timedOut ? ", timed out" : "") + ".";
      } else if (name === "error") {
        part("live-exit").textContent = body.error.message;
      }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handle(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } finally {
      button.disabled = false;
    }
  });
});
