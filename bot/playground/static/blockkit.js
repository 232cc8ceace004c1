// Block Kit as Slack draws it: blocks, elements and mrkdwn turned into DOM.
// `ctx` gives what a workspace knows: names for mentions, what a click does, a modal's state.
"use strict";

const BlockKit = (() => {
  const EMOJI = {
    white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️", red_circle: "🔴",
    large_green_circle: "🟢", green_circle: "🟢", large_yellow_circle: "🟡",
    yellow_circle: "🟡", large_orange_circle: "🟠", orange_circle: "🟠", white_circle: "⚪",
    large_blue_circle: "🔵", black_circle: "⚫", grey_question: "❔", question: "❓",
    exclamation: "❗", hourglass: "⌛", hourglass_flowing_sand: "⏳", arrow_up: "⬆️",
    arrow_down: "⬇️", arrow_right: "➡️", arrow_forward: "▶️", arrows_counterclockwise: "🔄",
    no_entry: "⛔", no_entry_sign: "🚫", lock: "🔒", unlock: "🔓", key: "🔑",
    rotating_light: "🚨", fire: "🔥", bell: "🔔", no_bell: "🔕", mute: "🔇",
    information_source: "ℹ️", package: "📦", floppy_disk: "💾", clipboard: "📋", link: "🔗",
    stopwatch: "⏱️", alarm_clock: "⏰", calendar: "📅", date: "📅", shield: "🛡️", mag: "🔍",
    wrench: "🔧", hammer_and_wrench: "🛠️", gear: "⚙️", eyes: "👀", tada: "🎉",
    thumbsup: "👍", "+1": "👍", thumbsdown: "👎", construction: "🚧", octagonal_sign: "🛑",
    broom: "🧹", inbox_tray: "📥", outbox_tray: "📤", page_facing_up: "📄", memo: "📝",
    pencil: "📝", bust_in_silhouette: "👤", busts_in_silhouette: "👥", speech_balloon: "💬",
    heavy_minus_sign: "➖", heavy_plus_sign: "➕", small_blue_diamond: "🔹",
    small_orange_diamond: "🔸", robot_face: "🤖", sparkles: "✨", zap: "⚡", bar_chart: "📊",
    chart_with_upwards_trend: "📈", scroll: "📜", label: "🏷️", pushpin: "📌", rocket: "🚀",
    checkered_flag: "🏁", traffic_light: "🚦", vertical_traffic_light: "🚦",
    ballot_box_with_check: "☑️", recycle: "♻️", arrow_up_small: "🔼", arrow_down_small: "🔽",
    large_red_square: "🟥", large_green_square: "🟩", large_yellow_square: "🟨",
    hourglass_done: "⌛", leftwards_arrow_with_hook: "↩️", new: "🆕", card_index_dividers: "🗂️",
    file_folder: "📁", skull: "💀", sos: "🆘", ok: "🆗", boom: "💥", dart: "🎯",
  };

  const escapeHtml = (s) =>
    s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  const decodeEntities = (s) =>
    s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  const emoji = (s) => s.replace(/:([a-z0-9_+\-]+):/g, (m, name) => EMOJI[name] || m);

  function safeUrl(url) {
    return /^(https?:|mailto:)/i.test(url) ? url : "#";
  }

  // One <...> control sequence: a link, a mention, a channel, a special mention or a date.
  function control(inner, ctx) {
    const [target, label] = inner.split("|", 2);
    if (target.startsWith("@")) {
      const id = target.slice(1);
      return `<span class="mention">@${escapeHtml(ctx.names[id] || label || id)}</span>`;
    }
    if (target.startsWith("#")) {
      const id = target.slice(1);
      return `<span class="mention">#${escapeHtml(label || ctx.channelNames[id] || id)}</span>`;
    }
    if (target.startsWith("!subteam^")) {
      return `<span class="mention">@${escapeHtml(label || target.slice(9))}</span>`;
    }
    if (target.startsWith("!date^")) {
      return escapeHtml(label || target);
    }
    if (target.startsWith("!")) {
      return `<span class="mention">@${escapeHtml(target.slice(1))}</span>`;
    }
    const url = decodeEntities(target);
    const text = label ? emoji(escapeHtml(decodeEntities(label))) : escapeHtml(url);
    return `<a href="${escapeHtml(safeUrl(url))}" target="_blank" rel="noopener">${text}</a>`;
  }

  // Slack's mrkdwn: *bold*, _italic_, ~strike~, `code`, ```blocks```, > quotes, <links>.
  function mrkdwn(text, ctx) {
    const kept = [];
    const keep = (html) => `\u0000${kept.push(html) - 1}\u0000`;
    let s = String(text).replace(/<([^<>]+)>/g, (m, inner) => keep(control(inner, ctx)));
    s = s.replace(/\u0000\d+\u0000|[^\u0000]+/g, (part) =>
      part.startsWith("\u0000") ? part : escapeHtml(decodeEntities(part)));
    s = s.replace(/```([\s\S]*?)```/g, (m, code) => keep(`<pre class="code">${code.replace(/^\n/, "")}</pre>`));
    s = s.replace(/`([^`\n]+)`/g, (m, code) => keep(`<code>${code}</code>`));
    const edge = "(^|[\\s(>\\u0000.,;:!?'\"-])";
    s = s.replace(new RegExp(edge + "\\*([^*\\n]+)\\*(?=$|[\\s).,;:!?'\"\\u0000-])", "g"), "$1<b>$2</b>");
    s = s.replace(new RegExp(edge + "_([^_\\n]+)_(?=$|[\\s).,;:!?'\"\\u0000-])", "g"), "$1<i>$2</i>");
    s = s.replace(new RegExp(edge + "~([^~\\n]+)~(?=$|[\\s).,;:!?'\"\\u0000-])", "g"), "$1<s>$2</s>");
    s = emoji(s);
    s = s.split("\n").map((line) =>
      line.startsWith("&gt; ") ? `<blockquote>${line.slice(5)}</blockquote>` : line).join("\n");
    s = s.replace(/\n/g, "<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
    return s.replace(/\u0000(\d+)\u0000/g, (m, i) => kept[Number(i)]);
  }

  function textHtml(obj, ctx) {
    if (!obj) return "";
    if (obj.type === "mrkdwn") return mrkdwn(obj.text || "", ctx);
    const plain = escapeHtml(obj.text || "");
    return obj.emoji === false ? plain : emoji(plain);
  }

  function el(tag, cls, html) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (html !== undefined) node.innerHTML = html;
    return node;
  }

  function confirmThen(confirm, ctx, go) {
    if (!confirm) return go();
    ctx.confirm(confirm, go);
  }

  function button(element, blockId, ctx) {
    const b = el("button", "bk-button" + (element.style ? ` ${element.style}` : ""),
      textHtml(element.text, ctx));
    b.type = "button";
    b.dataset.actionId = element.action_id;
    if (element.url) {
      b.addEventListener("click", () => window.open(safeUrl(element.url), "_blank", "noopener"));
      b.classList.add("link");
      if (!element.action_id) return b;
    }
    b.addEventListener("click", () => confirmThen(element.confirm, ctx, () =>
      ctx.act({ action_id: element.action_id, block_id: blockId, value: element.value })));
    return b;
  }

  function optionText(option, ctx) {
    return option ? textHtml(option.text, ctx).replace(/<[^>]+>/g, "") : "";
  }

  function allOptions(element) {
    const options = [...(element.options || [])];
    for (const group of element.option_groups || []) options.push(...(group.options || []));
    return options;
  }

  function select(element, blockId, ctx, inInput) {
    const multi = element.type.startsWith("multi_");
    const s = el("select", "bk-select");
    s.dataset.actionId = element.action_id;
    s.multiple = multi;
    if (!multi) {
      const placeholder = el("option", "", element.placeholder ? textHtml(element.placeholder, ctx) : "Select…");
      placeholder.value = "";
      s.appendChild(placeholder);
    }
    const initial = new Set([
      ...(element.initial_option ? [element.initial_option.value] : []),
      ...(element.initial_options || []).map((o) => o.value),
    ]);
    const add = (parent, option) => {
      const o = el("option", "", optionText(option, ctx));
      o.value = option.value;
      o.selected = initial.has(option.value);
      parent.appendChild(o);
    };
    if (element.option_groups) {
      for (const group of element.option_groups) {
        const g = document.createElement("optgroup");
        g.label = optionText({ text: group.label }, ctx);
        (group.options || []).forEach((o) => add(g, o));
        s.appendChild(g);
      }
    } else {
      (element.options || []).forEach((o) => add(s, o));
    }
    if (element.type === "users_select" || element.type === "multi_users_select") {
      for (const [id, name] of Object.entries(ctx.names)) add(s, { value: id, text: { type: "plain_text", text: name } });
    }
    if (!inInput) {
      s.addEventListener("change", () => {
        const option = allOptions(element).find((o) => o.value === s.value);
        confirmThen(element.confirm, ctx, () =>
          ctx.act({ action_id: element.action_id, block_id: blockId, selected_option: option }));
      });
    }
    return s;
  }

  function overflow(element, blockId, ctx) {
    const wrap = el("span", "bk-overflow");
    const b = el("button", "bk-button", "⋯");
    b.type = "button";
    const menu = el("div", "bk-menu");
    menu.hidden = true;
    for (const option of element.options || []) {
      const item = el("button", "bk-menu-item", textHtml(option.text, ctx));
      item.type = "button";
      item.addEventListener("click", () => {
        menu.hidden = true;
        confirmThen(element.confirm, ctx, () =>
          ctx.act({ action_id: element.action_id, block_id: blockId, selected_option: option }));
      });
      menu.appendChild(item);
    }
    b.addEventListener("click", () => { menu.hidden = !menu.hidden; });
    wrap.append(b, menu);
    return wrap;
  }

  function image(element) {
    const img = document.createElement("img");
    img.className = "bk-image";
    img.alt = element.alt_text || "";
    img.src = safeUrl(element.image_url || "");
    return img;
  }

  function inputElement(element, blockId, ctx) {
    switch (element.type) {
      case "plain_text_input": {
        const field = element.multiline ? el("textarea", "bk-input") : el("input", "bk-input");
        if (element.initial_value) field.value = element.initial_value;
        if (element.placeholder) field.placeholder = element.placeholder.text;
        if (element.max_length) field.maxLength = element.max_length;
        return field;
      }
      case "number_input": {
        const field = el("input", "bk-input");
        field.type = "number";
        if (element.initial_value) field.value = element.initial_value;
        return field;
      }
      case "datepicker": {
        const field = el("input", "bk-input");
        field.type = "date";
        if (element.initial_date) field.value = element.initial_date;
        return field;
      }
      case "timepicker": {
        const field = el("input", "bk-input");
        field.type = "time";
        if (element.initial_time) field.value = element.initial_time;
        return field;
      }
      case "radio_buttons":
      case "checkboxes": {
        const box = el("div", "bk-choices");
        const initial = new Set([
          ...(element.initial_option ? [element.initial_option.value] : []),
          ...(element.initial_options || []).map((o) => o.value),
        ]);
        const name = `${blockId}-${element.action_id}`;
        for (const option of element.options || []) {
          const label = el("label", "bk-choice");
          const input = document.createElement("input");
          input.type = element.type === "radio_buttons" ? "radio" : "checkbox";
          input.name = name;
          input.value = option.value;
          input.checked = initial.has(option.value);
          label.append(input, el("span", "", textHtml(option.text, ctx)));
          box.appendChild(label);
        }
        return box;
      }
      default:
        if (element.type.endsWith("select")) return select(element, blockId, ctx, true);
        return el("div", "bk-unsupported", `(${escapeHtml(element.type)})`);
    }
  }

  // The value the emulator's client expects for one input (plain; options by value).
  function inputValue(element, node) {
    switch (element.type) {
      case "radio_buttons": {
        const checked = node.querySelector("input:checked");
        return checked ? checked.value : null;
      }
      case "checkboxes":
        return [...node.querySelectorAll("input:checked")].map((i) => i.value);
      default:
        if (node.multiple) return [...node.selectedOptions].map((o) => o.value);
        return node.value === "" ? null : node.value;
    }
  }

  function actionElement(element, blockId, ctx) {
    switch (element.type) {
      case "button": return button(element, blockId, ctx);
      case "overflow": return overflow(element, blockId, ctx);
      case "image": return image(element);
      case "datepicker": case "timepicker": {
        const field = inputElement(element, blockId, ctx);
        field.addEventListener("change", () => ctx.act({ action_id: element.action_id, block_id: blockId, value: field.value }));
        return field;
      }
      default:
        if (element.type.endsWith("select")) return select(element, blockId, ctx, false);
        return el("span", "bk-unsupported", `(${escapeHtml(element.type)})`);
    }
  }

  function richText(block, ctx) {
    const out = el("div", "bk-rich");
    const inline = (elements) => (elements || []).map((e) => {
      if (e.type === "text") {
        let h = escapeHtml(e.text || "").replace(/\n/g, "<br>");
        const st = e.style || {};
        if (st.code) h = `<code>${h}</code>`;
        if (st.bold) h = `<b>${h}</b>`;
        if (st.italic) h = `<i>${h}</i>`;
        if (st.strike) h = `<s>${h}</s>`;
        return h;
      }
      if (e.type === "link") return `<a href="${escapeHtml(safeUrl(e.url))}" target="_blank" rel="noopener">${escapeHtml(e.text || e.url)}</a>`;
      if (e.type === "user") return `<span class="mention">@${escapeHtml(ctx.names[e.user_id] || e.user_id)}</span>`;
      if (e.type === "emoji") return EMOJI[e.name] || `:${escapeHtml(e.name)}:`;
      return "";
    }).join("");
    for (const part of block.elements || []) {
      if (part.type === "rich_text_section") out.appendChild(el("div", "", inline(part.elements)));
      else if (part.type === "rich_text_preformatted") out.appendChild(el("pre", "code", inline(part.elements)));
      else if (part.type === "rich_text_quote") out.appendChild(el("blockquote", "", inline(part.elements)));
      else if (part.type === "rich_text_list") {
        const list = el(part.style === "ordered" ? "ol" : "ul");
        for (const item of part.elements || []) list.appendChild(el("li", "", inline(item.elements)));
        out.appendChild(list);
      }
    }
    return out;
  }

  function block(b, ctx) {
    const blockId = b.block_id;
    switch (b.type) {
      case "header":
        return el("div", "bk-header", textHtml(b.text, ctx));
      case "divider":
        return el("hr", "bk-divider");
      case "context": {
        const node = el("div", "bk-context");
        for (const e of b.elements || []) {
          node.appendChild(e.type === "image" ? image(e) : el("span", "", textHtml(e, ctx)));
        }
        return node;
      }
      case "section": {
        const node = el("div", "bk-section");
        const body = el("div", "bk-section-body");
        if (b.text) body.appendChild(el("div", "bk-text", textHtml(b.text, ctx)));
        if (b.fields) {
          const fields = el("div", "bk-fields");
          for (const f of b.fields) fields.appendChild(el("div", "bk-field", textHtml(f, ctx)));
          body.appendChild(fields);
        }
        node.appendChild(body);
        if (b.accessory) {
          const side = el("div", "bk-accessory");
          side.appendChild(actionElement(b.accessory, blockId, ctx));
          node.appendChild(side);
        }
        return node;
      }
      case "actions": {
        const node = el("div", "bk-actions");
        for (const e of b.elements || []) node.appendChild(actionElement(e, blockId, ctx));
        return node;
      }
      case "image": {
        const node = el("div", "bk-image-block");
        if (b.title) node.appendChild(el("div", "bk-context", textHtml(b.title, ctx)));
        node.appendChild(image(b));
        return node;
      }
      case "input": {
        const node = el("div", "bk-input-block");
        node.dataset.blockId = blockId;
        const label = el("label", "bk-label", textHtml(b.label, ctx) +
          (b.optional ? ' <span class="bk-optional">(optional)</span>' : ""));
        const field = inputElement(b.element, blockId, ctx);
        node.append(label, field);
        if (b.hint) node.appendChild(el("div", "bk-hint", textHtml(b.hint, ctx)));
        const error = ctx.errors && ctx.errors[blockId];
        if (error) node.appendChild(el("div", "bk-error", escapeHtml(error)));
        if (ctx.inputs) ctx.inputs.push({ blockId, element: b.element, node: field });
        return node;
      }
      case "rich_text":
        return richText(b, ctx);
      case "file":
        return el("div", "bk-context", "📄 (a file)");
      default:
        return el("div", "bk-unsupported", `(${escapeHtml(b.type)} block)`);
    }
  }

  function render(blocks, ctx) {
    const root = el("div", "bk");
    for (const b of blocks || []) root.appendChild(block(b, ctx));
    return root;
  }

  // The modal's state, as block_id → action_id → value.
  function values(inputs) {
    const state = {};
    for (const { blockId, element, node } of inputs) {
      const value = inputValue(element, node);
      if (value === null || (Array.isArray(value) && value.length === 0)) continue;
      (state[blockId] = state[blockId] || {})[element.action_id] = value;
    }
    return state;
  }

  return { render, mrkdwn, textHtml, values, escapeHtml, emoji };
})();
