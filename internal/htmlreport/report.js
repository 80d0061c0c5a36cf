"use strict";
(() => {
  // Tabs: one panel shown at a time; arrow keys move between tabs.
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
  };
  tabs.forEach((t, i) => {
    t.addEventListener("click", () => select(t, false));
    t.addEventListener("keydown", (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
      if (step) {
        ev.preventDefault();
        select(tabs[(i + step + tabs.length) % tabs.length], true);
      }
    });
  });

  // Samples: every text from the data goes in through textContent, so an
  // answer full of markup is shown, never parsed.
  const evals = JSON.parse(document.getElementById("pv-data").textContent) || [];
  const modelSel = document.getElementById("sample-model");
  const taskSel = document.getElementById("sample-task");
  const orderSel = document.getElementById("sample-order");
  const status = document.getElementById("sample-status");
  const list = document.getElementById("sample-list");

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const fmt = (v, d) => Number(v).toFixed(d);

  const show = () => {
    list.replaceChildren();
    const ev = evals.find((e) => e.model === modelSel.value && e.task === taskSel.value);
    if (!ev) {
      status.textContent = `${modelSel.value} has not been evaluated on ${taskSel.value}.`;
      return;
    }
    const m = ev.metric;
    status.textContent = (m.n > 0 ? `${ev.trait} score ${fmt(m.mean, 1)} ± ${fmt(m.stderr, 1)} over N=${m.n}` : `no scored sample`) +
      (m.no_answer > 0 ? `, ${m.no_answer} without an answer from the judge` : "") +
      `; judge ${ev.judge_model}, model ${ev.model_id}.`;
    const c = ev.coherence;
    if (c) {
      status.textContent += c.metric.n > 0
        ? ` Coherence ${fmt(c.metric.mean, 1)} ± ${fmt(c.metric.stderr, 1)} over N=${c.metric.n}; ` +
          `${fmt(100 * c.share, 0)}% of answers above ${c.threshold}` +
          (c.trait.n > 0 ? `, whose ${ev.trait} score is ${fmt(c.trait.mean, 1)} ± ${fmt(c.trait.stderr, 1)}.` : ".")
        : " The coherence judge scored no answer.";
    }
    const samples = (ev.samples || []).slice();
    const key = (s) => (s.score === null || s.score === undefined ? -1 : s.score);
    if (orderSel.value === "high") samples.sort((a, b) => key(b) - key(a));
    if (orderSel.value === "low") samples.sort((a, b) => key(a) - key(b));
    const coh = (s) => (s.coherence === null || s.coherence === undefined ? -1 : s.coherence);
    if (orderSel.value === "coherence-low") samples.sort((a, b) => coh(a) - coh(b));
    for (const s of samples) {
      const li = el("li", "sample");
      const head = el("div", "sample-head");
      head.append(el("span", "sid", s.id), el("span", "epoch", `epoch ${s.epoch}`));
      const scored = s.score !== null && s.score !== undefined;
      head.append(el("span", scored ? "score" : "score none", scored ? `score ${fmt(s.score, 1)}` : "no answer"));
      if (s.coherence_call) {
        const judged = s.coherence !== null && s.coherence !== undefined;
        head.append(el("span", judged ? "coh-score" : "coh-score none",
          judged ? `coherence ${fmt(s.coherence, 1)}` : "coherence: no answer"));
      }
      li.append(head, el("h4", "", "Question"), el("p", "question", s.question),
        el("h4", "", "Answer"), el("p", "answer", s.answer));
      const tokens = (title, lps) => {
        if (!lps || !lps.length) return;
        const d = el("details", "judge");
        d.append(el("summary", "", title));
        const table = el("table");
        const hr = el("tr");
        hr.append(el("th", "", "token"), el("th", "", "probability"));
        table.append(hr);
        for (const t of lps) {
          const tr = el("tr");
          tr.append(el("td", "", JSON.stringify(t.token)), el("td", "", fmt(100 * Math.exp(t.logprob), 2) + "%"));
          table.append(tr);
        }
        d.append(table);
        li.append(d);
      };
      tokens("The judge's top tokens", s.judge_logprobs);
      tokens("The coherence judge's top tokens", s.coherence_logprobs);
      list.append(li);
    }
  };
  for (const s of [modelSel, taskSel, orderSel]) s.addEventListener("change", show);
  show();
})();
