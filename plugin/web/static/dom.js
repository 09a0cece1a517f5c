// What the portal's scripts share: building elements from data. Text goes in with textContent and values
// with setAttribute, never as HTML: names and subjects come from Exchange and phones (hostile input).
"use strict";

window.pbxsync = Object.freeze({
  el: function (tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      node.setAttribute(name, value);
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  },
});
