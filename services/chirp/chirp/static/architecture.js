// The live architecture page: polls the page's feed once a second through the same front door
// and redraws the components, their pods, the request path and who answered recent polls.
// Everything it draws comes from the feed (chirp/web/live_model.py); it keeps only the history of
// which pod and database answered its own last polls.
"use strict";

(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const feed = root.dataset.feed;
  const POLL_MS = 1000;
  const TIMEOUT_MS = 2500;
  const HISTORY = 60; // polls kept for the shares (one minute)
  const history = [];

  // Rows of the diagram, top to bottom: the path a request takes.
  function row(name) {
    if (name === "client") return 0;
    if (name === "edge") return 1;
    if (name === "web" || name === "monolith" || name === "worker") return 2;
    if (name === "redis") return 3;
    if (name.endsWith("-primary") || name.endsWith("-replica")) return 4; // side by side
    return 5;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function shortName(pod) {
    // chirp-web-5d8f7c9b4-x2x9q -> web-…x2x9q; chirp-db-replica-1 -> db-replica-1
    const parts = pod.split("-");
    if (parts.length > 3 && /^[a-z0-9]{5}$/.test(parts[parts.length - 1]) &&
        /^[a-z0-9]{8,10}$/.test(parts[parts.length - 2])) {
      return parts.slice(1, -2).join("-") + "-" + parts[parts.length - 1];
    }
    return parts.slice(1).join("-") || pod;
  }

  function podChip(pod) {
    const classes = ["pod", pod.state, pod.serving ? "serving" : ""].filter(Boolean).join(" ");
    const title = `${pod.name}: ${pod.state}, phase ${pod.phase}, ${pod.restarts} restart(s)` +
      (pod.serving ? ", answered this poll" : "");
    return el("li", {class: classes, "data-pod": pod.name, "data-state": pod.state, title},
      el("span", {class: "dot"}), shortName(pod.name),
      pod.restarts ? el("span", {class: "restarts"}, ` ↻${pod.restarts}`) : null);
  }

  function componentBox(component, model) {
    const classes = ["component", component.spof ? "spof" : "",
      (component.pods || []).some((p) => p.serving) ||
        (!component.pods && (component.name === "web" || component.name === "monolith"))
        ? "served" : ""].filter(Boolean).join(" ");
    const count = component.pods
      ? `${component.ready}/${component.replicas} ready`
      : `× ${component.replicas}`;
    return el("div", {class: classes, "data-component": component.name,
                      "data-spof": component.spof ? "true" : "false"},
      el("h3", {}, component.name, component.spof ? el("span", {class: "badge"}, "SPOF") : null),
      el("p", {class: "kind"}, `${component.kind || ""} ${count}`),
      component.pods ? el("ul", {class: "pods"}, component.pods.map(podChip)) : null);
  }

  function drawDiagram(model) {
    const diagram = el("div", {class: "diagram", id: "diagram"});
    const rows = new Map();
    const boxes = [{name: "client", kind: "", replicas: null, pods: null, client: true},
      ...model.components];
    for (const component of boxes) {
      const r = row(component.name);
      if (!rows.has(r)) rows.set(r, []);
      rows.get(r).push(component.client
        ? el("div", {class: "component client", "data-component": "client"},
          el("h3", {}, "client"), el("p", {class: "kind"}, "your browser"))
        : componentBox(component, model));
    }
    for (const r of [...rows.keys()].sort((a, b) => a - b)) {
      diagram.append(el("div", {class: "row"}, rows.get(r)));
    }
    return diagram;
  }

  // Arrows between the boxes, drawn once they are laid out. Where several arrows leave or reach
  // one box, their ends are spread along its edge (in the order of the boxes at the other end),
  // so they neither overlap nor share a label spot.
  function drawArrows(diagram, flows) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "arrows");
    const box = diagram.getBoundingClientRect();
    svg.setAttribute("width", box.width);
    svg.setAttribute("height", box.height);
    svg.innerHTML = '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" ' +
      'markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
      '<path d="M0,0 L10,5 L0,10 z" fill="#36c"/></marker></defs>';
    const rect = (name) => {
      const node = diagram.querySelector(`[data-component="${name}"]`);
      return node ? node.getBoundingClientRect() : null;
    };
    const drawn = flows.filter((f) => rect(f.from) && rect(f.to));
    const centre = (r) => r.left + r.width / 2;
    // the x of one arrow's end on box `r`, among the arrows `ends` of that box
    const spread = (r, ends, flow, other) => {
      const order = ends.slice().sort((f, g) => centre(rect(other(f))) - centre(rect(other(g))));
      return r.left + r.width * (order.indexOf(flow) + 1) / (order.length + 1) - box.left;
    };
    for (const flow of drawn) {
      const a = rect(flow.from);
      const b = rect(flow.to);
      const down = b.top >= a.bottom - 1;
      const x1 = spread(a, drawn.filter((f) => f.from === flow.from), flow, (f) => f.to);
      const x2 = spread(b, drawn.filter((f) => f.to === flow.to), flow, (f) => f.from);
      const y1 = (down ? a.bottom : a.top) - box.top;
      const y2 = (down ? b.top : b.bottom) - box.top;
      const line = document.createElementNS(ns, "line");
      for (const [k, v] of Object.entries({x1, y1, x2, y2})) line.setAttribute(k, v);
      line.setAttribute("marker-end", "url(#head)");
      line.setAttribute("data-flow", `${flow.from}->${flow.to}`);
      svg.append(line);
      // the label nearer the target (less crowded), on the side the arrow comes from, so two
      // arrows meeting at one box keep their labels apart
      const label = document.createElementNS(ns, "text");
      const rightwards = x2 >= x1;
      label.setAttribute("text-anchor", rightwards ? "end" : "start");
      label.setAttribute("x", x1 + (x2 - x1) * 0.65 + (rightwards ? -4 : 4));
      label.setAttribute("y", y1 + (y2 - y1) * 0.65);
      label.textContent = flow.what;
      svg.append(label);
    }
    diagram.prepend(svg);
  }

  function shares(key) {
    const counts = new Map();
    for (const entry of history) {
      for (const value of entry[key]) counts.set(value, (counts.get(value) || 0) + 1);
    }
    return [...counts.entries()].sort((a, b) => b[1] - a[1]);
  }

  function drawShares() {
    const n = history.length;
    const table = (title, key) => el("div", {class: "share", "data-share": key},
      el("h3", {}, title),
      el("ul", {}, shares(key).map(([name, count]) => el("li", {"data-name": name},
        el("span", {class: "bar", style: `width:${Math.round(100 * count / n)}%`}),
        `${name}: ${Math.round(100 * count / n)} %`))));
    return el("section", {id: "shares"},
      el("h2", {}, "Who answered"),
      el("p", {class: "note"}, `Of this page's last ${n} poll${n === 1 ? "" : "s"}, each sent through the front ` +
        "door like any request: which web pod answered, and which database it read. " +
        "Sticky sessions (stages 2–3) keep one browser on one pod; other clients are not counted."),
      el("div", {class: "shares"}, table("web pod", "pods"), table("database", "dbs")));
  }

  function drawHeader(model) {
    const title = `Stage ${model.stage}` + (model.stageName ? `: ${model.stageName}` : "");
    const h1 = document.querySelector("main h1");
    if (h1 && h1.textContent !== title) h1.textContent = title;
    const nav = document.querySelector("nav .stage"); // the stage in the menu, as the app names it
    if (nav) nav.textContent = `stage ${model.stage}` + (model.stageName ? ` (${model.stageName})` : "");
    const progress = model.progress;
    const status = el("p", {id: "status"});
    if (progress) {
      status.append("ScaleStage: phase ", el("b", {id: "phase"}, progress.phase || "?"));
      if (progress.wanted && progress.wanted !== progress.reached) {
        status.append(`, moving from stage ${progress.reached} to ${progress.wanted}`);
      }
      if (progress.message) status.append(` (${progress.message})`);
    }
    if (progress) status.append(" · ");
    status.append(el("span", {id: "access", class: model.live ? "live" : "not-live"},
      model.live ? "live from the Kubernetes API"
        : `pods not shown: ${model.problem || "no access to the cluster"}`));
    status.append(" · this poll: pod ", el("b", {id: "served-pod", class: "here"},
      model.served.pod), ", database ", el("b", {id: "served-db"}, model.served.db),
      ", cache ", el("b", {}, model.served.cache));
    return status;
  }

  function drawLesson(model) {
    if (!model.lesson) return null;
    return el("section", {id: "lesson"},
      el("p", {}, el("b", {}, "What breaks here: "), model.lesson.breaks),
      el("p", {}, el("b", {}, "What the next stage fixes: "), model.lesson.nextFixes));
  }

  function draw(model) {
    history.push({pods: [model.served.pod], dbs: String(model.served.db).split(",")});
    while (history.length > HISTORY) history.shift();
    const diagram = model.described ? drawDiagram(model) : null;
    root.replaceChildren(drawHeader(model),
      diagram || el("p", {class: "note"}, "The operator has not described this instance."),
      drawLesson(model), drawShares());
    if (diagram) drawArrows(diagram, model.flows);
    root.dataset.updated = String(Date.now());
    root.dataset.stage = String(model.stage);
  }

  async function poll() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const response = await fetch(feed, {cache: "no-store", signal: controller.signal,
                                          headers: {Accept: "application/json"}});
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      draw(await response.json());
      root.classList.remove("stale");
    } catch (error) {
      root.classList.add("stale"); // the front door did not answer: say so, keep the last view
      root.dataset.error = String(error);
    } finally {
      clearTimeout(timer);
      setTimeout(poll, POLL_MS);
    }
  }

  const initial = document.getElementById("live-initial");
  if (initial) draw(JSON.parse(initial.textContent));
  setTimeout(poll, POLL_MS);
}());
