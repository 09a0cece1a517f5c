// A running conference's live room: who is in it, polled from the JSON endpoint while the page is open.
// Names come from phones and Exchange (hostile): always textContent, never HTML.
"use strict";

(function () {
  const section = document.getElementById("live-room");
  const list = document.getElementById("members");
  const count = document.getElementById("member-count");
  if (!section || !list || !count) {
    return;
  }
  const endpoint = section.dataset.endpoint;
  const every = Math.max(1, Number(section.dataset.poll) || 3) * 1000;
  const conference = section.dataset.conference;
  const token = document.querySelector('meta[name="csrf-token"]').content;

  const el = window.pbxsync.el;

  function hostForm(action, target, label, text) {
    const form = el("form", { method: "post", action: "/conferences/" + conference + "/host", class: "inline host-form" });
    form.append(el("input", { type: "hidden", name: "csrf", value: token }),
      el("input", { type: "hidden", name: "action", value: action }),
      el("input", { type: "hidden", name: "target", value: target }));
    form.append(el("button", { type: "submit", class: "secondary", "data-action": action, "aria-label": label }, text));
    return form;
  }

  function memberItem(member, host) {
    const item = el("li", { class: "member", "data-extension": member.extension });
    item.append(el("span", { class: "member-name" }, member.name));
    if (member.number) {
      item.append(" ", el("span", { class: "muted" }, "(" + member.number + ")"));
    }
    if (member.host) {
      item.append(" ", el("span", { class: "tag" }, "host"));
    }
    if (member.muted) {
      item.append(" ", el("span", { class: "tag" }, "muted"));
    }
    if (host) {
      item.append(" ", member.muted ? hostForm("unmute", member.key, "Unmute " + member.name, "Unmute")
        : hostForm("mute", member.key, "Mute " + member.name, "Mute"));
      item.append(" ", hostForm("kick", member.key, "Remove " + member.name, "Remove"));
    }
    return item;
  }

  function showOutcomes(people) {
    for (const person of people) {
      const row = document.querySelector('#participants tr[data-extension="' + CSS.escape(person.extension) + '"]');
      const cell = row && row.querySelector(".outcome");
      if (cell) {
        cell.textContent = (person.outcome || "—") + (person.attempts > 1 ? " (" + person.attempts + " tries)" : "") +
          (person.joined ? ", joined" : "");
      }
    }
  }

  async function poll() {
    try {
      const response = await fetch(endpoint, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        document.getElementById("state").textContent = data.state;
        showOutcomes(data.participants);
        if (!data.room || !data.room.reachable) {
          count.textContent = data.running ? "The phone system cannot be asked who is in the room right now."
            : "The meeting is over.";
          list.replaceChildren();
        } else {
          const n = data.room.members.length;
          count.textContent = n + " in the room.";
          list.replaceChildren(...data.room.members.map((m) => memberItem(m, data.host)));
        }
        if (!data.running) {
          return;  // nothing more will change
        }
      }
    } catch (e) {
      // a moment offline: try again at the next tick
    }
    window.setTimeout(poll, every);
  }

  window.setTimeout(poll, every);
})();
