// The example's client side: the chat room's websocket and the home page's
// server-sent events. Plain JavaScript, no build step.
"use strict";

function appendMessage(list, message) {
  const item = document.createElement("li");
  if (message.type === "message") {
    item.className = "message";
    const user = document.createElement("span");
    user.className = "user";
    user.textContent = message.user;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    item.append(user, text);
  } else {
    item.className = "notice " + message.type;
    item.textContent = message.user + (message.type === "join" ? " joined" : " left");
  }
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return scheme + "//" + window.location.host + path;
}

function openRoom(log) {
  const status = document.getElementById("status");
  const form = document.getElementById("send");
  const input = document.getElementById("message");
  let socket = null;
  let retry = 500;

  function connect() {
    socket = new WebSocket(socketUrl(log.dataset.socketUrl));
    socket.addEventListener("open", () => {
      retry = 500;
      status.textContent = "connected";
      status.classList.add("connected");
    });
    socket.addEventListener("message", (event) => {
      appendMessage(log, JSON.parse(event.data));
    });
    socket.addEventListener("close", () => {
      // The server restarted or reloaded: come back.
      status.textContent = "reconnecting…";
      status.classList.remove("connected");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (socket && socket.readyState === WebSocket.OPEN && input.value.trim()) {
      socket.send(input.value);
      input.value = "";
    }
  });
  connect();
}

function followRoom(feed) {
  const source = new EventSource(feed.dataset.eventsUrl);
  for (const type of ["message", "join", "leave"]) {
    source.addEventListener(type, (event) => appendMessage(feed, JSON.parse(event.data)));
  }
}

function goToRoom(form) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.location.pathname = "/chat/" + encodeURIComponent(form.elements.room.value) + "/";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (log) openRoom(log);
  const feed = document.getElementById("feed");
  if (feed) followRoom(feed);
  const form = document.getElementById("go-to-room");
  if (form) goToRoom(form);
});
