// My contacts: results follow the typing (debounced) through the JSON endpoint. Every value from the
// server is put in with textContent, never as HTML: a contact's name is hostile input.
"use strict";

(function () {
  const DEBOUNCE_MS = 200;
  const input = document.getElementById("q");
  const list = document.getElementById("results");
  const count = document.getElementById("result-count");
  if (!input || !list || !count) {
    return;
  }
  const endpoint = input.dataset.endpoint;
  const token = document.querySelector('meta[name="csrf-token"]').content;
  let timer = null;
  let latest = 0;

  const el = window.pbxsync.el;

  function hidden(name, value) {
    return el("input", { type: "hidden", name: name, value: String(value) });
  }

  function callForm(contact, number, query) {
    const form = el("form", { method: "post", action: "/my/contacts/call", class: "call-form" });
    form.append(hidden("csrf", token), hidden("contact", contact.id), hidden("number", number.index),
      hidden("q", query));
    form.append(el("button", {
      type: "submit", class: "call",
      "aria-label": "Call " + contact.name + ", " + number.kind + " " + number.national,
    }, "Call"));
    return form;
  }

  function contactItem(contact, query) {
    const item = el("li", { class: "contact card", "data-contact": String(contact.id) });
    item.append(el("h2", { class: "contact-name" }, contact.name));
    const about = [contact.title, contact.company].filter(Boolean).join(", ");
    if (about) {
      item.append(el("p", { class: "muted contact-company" }, about));
    }
    if (!contact.numbers.length) {
      item.append(el("p", { class: "muted" }, "No phone number."));
      return item;
    }
    const table = el("table", { class: "numbers" });
    const head = el("tr");
    for (const title of ["Line", "National", "International"]) {
      head.append(el("th", { scope: "col" }, title));
    }
    const callHead = el("th", { scope: "col" });
    callHead.append(el("span", { class: "visually-hidden" }, "Call"));
    head.append(callHead);
    const thead = el("thead");
    thead.append(head);
    table.append(thead);
    const body = el("tbody");
    for (const number of contact.numbers) {
      const row = el("tr");
      row.append(el("th", { scope: "row" }, number.kind), el("td", { class: "national" }, number.national),
        el("td", { class: "international" }, number.international));
      const cell = el("td");
      if (number.callable) {
        cell.append(callForm(contact, number, query));
      }
      row.append(cell);
      body.append(row);
    }
    table.append(body);
    item.append(table);
    return item;
  }

  function show(data, query) {
    list.replaceChildren(...data.contacts.map((c) => contactItem(c, query)));
    const n = data.contacts.length;
    count.textContent = query.trim().length < 2 ? "" :
      n + (data.more ? "+" : "") + " contact" + (n === 1 ? "" : "s") + " found" +
      (data.more ? "; type more to narrow it down." : ".");
  }

  async function search() {
    const query = input.value;
    const mine = ++latest;
    try {
      const response = await fetch(endpoint + "?q=" + encodeURIComponent(query), {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) {
        return;
      }
      const data = await response.json();
      if (mine === latest) {  // an older, slower answer never overwrites a newer one
        show(data, query);
        const url = new URL(window.location.href);
        url.searchParams.set("q", query);
        window.history.replaceState(null, "", url);
      }
    } catch (e) {
      // offline for a moment: the form's own submit still works
    }
  }

  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(search, DEBOUNCE_MS);
  });
})();
