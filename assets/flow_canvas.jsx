// Flowloom's workflow canvas: React Flow (@xyflow/react 12) with Flowloom's node renderer.
//
// Python owns the graph (nodes, edges, their configs); this component owns what only the
// browser needs: drag positions while dragging, selection, viewport, measured sizes.
// It sends coarse events to Python (drop, drag stop, connect, select, delete, shortcut)
// and never forwards DOM events.
import React, { createContext, memo, useCallback, useContext, useEffect, useRef, useState } from "react";
import {
  Background,
  Controls,
  Handle,
  MiniMap,
  Panel,
  Position,
  ReactFlow,
  ReactFlowProvider,
  useEdgesState,
  useNodesState,
  getViewportForBounds,
  useReactFlow,
  useStore,
  useStoreApi,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";

const DRAG_MIME = "application/reactflow";
const BIG_GRAPH = 200; // from this many nodes on, only visible elements are rendered
const MIN_ZOOM = 0.05;
const DETAIL_ZOOM = 0.4; // below this zoom a node is drawn without its port labels
const BIG_GRAPH_MIN_ZOOM = 0.4; // a big graph opens readable, centred, rather than as specks
const NODE_WIDTH = 224;
const ERROR_PORT = "error";
// Fixed geometry, so a node's handles are known before it is drawn (see nodeHandles).
const HEAD_HEIGHT = 46;
const PORTS_TOP = 8; // 1px rule + padding above the first port row
const PORT_HEIGHT = 20;
const PORT_GAP = 2;
const HANDLE = 10;

const CanvasContext = createContext({ types: {}, icons: {} });

const CSS = `
.fl-canvas { position: relative; width: 100%; height: 100%; background: #f8f9fb; }
.fl-canvas .react-flow__node-fl { padding: 0; border: none; background: transparent; box-shadow: none; }
.fl-node { box-sizing: border-box; width: ${NODE_WIDTH}px; background: #fff; border: 1px solid #dfe3ea; border-radius: 12px;
  box-shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08); font-size: 12px; color: #1c2024;
  font-family: Inter, ui-sans-serif, system-ui, sans-serif; transition: box-shadow .2s, border-color .2s; }
.react-flow__node.selected .fl-node { outline: 2px solid #8e7cf0; outline-offset: 3px; }
.fl-head { box-sizing: border-box; height: ${HEAD_HEIGHT}px; display: flex; align-items: center; gap: 8px; padding: 0 10px; }
.fl-icon { flex: none; width: 28px; height: 28px; border-radius: 8px; display: flex; align-items: center;
  justify-content: center; background: var(--cat-bg); color: var(--cat-fg); }
.fl-titles { flex: 1; min-width: 0; }
.fl-label { font-weight: 600; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.fl-type { color: #80838d; font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.fl-node { position: relative; }
.fl-badge { position: absolute; top: -9px; right: 10px; font-size: 10px; font-weight: 600; line-height: 14px;
  padding: 1px 8px; border-radius: 999px; text-transform: capitalize; background: #f0f0f3; color: #60646c;
  border: 1px solid #fff; box-shadow: 0 1px 2px rgba(16,24,40,.12); }
.fl-ports { display: flex; justify-content: space-between; gap: 6px; padding: ${PORTS_TOP - 1}px 0 8px;
  border-top: 1px solid #eff1f4; }
.fl-col { display: flex; flex-direction: column; gap: ${PORT_GAP}px; min-width: 0; }
.fl-col.out { align-items: flex-end; }
.fl-port { position: relative; height: ${PORT_HEIGHT}px; min-width: 24px; display: flex; align-items: center; gap: 5px; padding: 0 12px;
  color: #60646c; font-size: 11px; white-space: nowrap; }
.fl-port .fl-ptype { color: #b0b4ba; font-size: 10px; }
.fl-port.err { color: #ce2c31; }
.fl-canvas .react-flow__handle.fl-handle { box-sizing: border-box; width: ${HANDLE}px; height: ${HANDLE}px; border: 2px solid #fff;
  background: var(--port, #8b8d98); box-shadow: 0 0 0 1px rgba(0,0,0,.12); }
.fl-canvas .react-flow__handle.fl-handle:hover { box-shadow: 0 0 0 4px rgba(110,86,207,.28); }
.fl-canvas .react-flow__handle.fl-handle.connectingto { background: #6e56cf; }
.fl-issue { margin: 0 8px 8px; padding: 4px 7px; border-radius: 6px; font-size: 11px; line-height: 1.35;
  background: #fff1f0; color: #ce2c31; overflow: hidden; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.fl-issue.warning { background: #fff8e6; color: #ab6400; }
.fl-node.invalid-error { border-color: #e5484d; box-shadow: 0 0 0 3px rgba(229,72,77,.35); }
.fl-node.invalid-warning { border-color: #ffc53d; box-shadow: 0 0 0 3px rgba(255,197,61,.35); }
.fl-node[data-status="queued"] { border-color: #b9bbc6; }
.fl-node[data-status="queued"] .fl-badge { background: #f0f0f3; color: #60646c; }
.fl-node[data-status="running"] { border-color: #0090ff; animation: fl-pulse 1.2s ease-in-out infinite; }
.fl-node[data-status="running"] .fl-badge { background: #e6f4fe; color: #0d74ce; }
.fl-node[data-status="succeeded"] { border-color: #30a46c; box-shadow: 0 0 0 3px rgba(48,164,108,.28); }
.fl-node[data-status="succeeded"] .fl-badge { background: #e6f6eb; color: #218358; }
.fl-node[data-status="failed"] { border-color: #e5484d; box-shadow: 0 0 0 3px rgba(229,72,77,.3); }
.fl-node[data-status="failed"] .fl-badge { background: #feebec; color: #ce2c31; }
.fl-node[data-status="waiting"] { border-color: #ffb224; box-shadow: 0 0 0 3px rgba(255,178,36,.3); }
.fl-node[data-status="waiting"] .fl-badge { background: #fff7c2; color: #ab6400; }
.fl-node[data-status="skipped"], .fl-node[data-status="cancelled"] { opacity: .55; border-style: dashed; }
@keyframes fl-pulse { 0%,100% { box-shadow: 0 0 0 2px rgba(0,144,255,.25); } 50% { box-shadow: 0 0 0 6px rgba(0,144,255,.12); } }
.fl-cat-ai { --cat-bg: #f4f0fe; --cat-fg: #6e56cf; }
.fl-cat-control { --cat-bg: #f0f0f3; --cat-fg: #60646c; }
.fl-cat-tool { --cat-bg: #e6f4fe; --cat-fg: #0d74ce; }
.fl-cat-human { --cat-bg: #fff7c2; --cat-fg: #ab6400; }
.fl-cat-other { --cat-bg: #e7f9f5; --cat-fg: #008573; }
.fl-canvas .react-flow__edge-path { stroke: #9da3ae; stroke-width: 1.6; }
.fl-canvas .react-flow__edge.selected .react-flow__edge-path { stroke: #6e56cf; stroke-width: 2.2; }
.fl-canvas .react-flow__edge.fl-edge-error .react-flow__edge-path { stroke: #e5484d; stroke-dasharray: 5 4; }
.fl-canvas .react-flow__edge.fl-edge-done .react-flow__edge-path { stroke: #30a46c; stroke-width: 2.2; }
.fl-canvas .react-flow__edge.fl-edge-live .react-flow__edge-path { stroke: #0090ff; stroke-width: 2.2; }
.fl-node.fl-compact .fl-label { font-size: 15px; }
.fl-minimap canvas { display: block; background: #fff; border-radius: 6px; box-shadow: 0 1px 3px rgba(16,24,40,.15); cursor: pointer; }
.fl-empty { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  pointer-events: none; color: #8b8d98; font-size: 14px; font-family: Inter, ui-sans-serif, system-ui, sans-serif; }
.fl-empty div { padding: 14px 18px; border: 1px dashed #cdced6; border-radius: 12px; background: rgba(255,255,255,.7); }
`;

const PORT_COLORS = {
  any: "#8b8d98", json: "#5b5bd6", text: "#30a46c", number: "#0090ff", boolean: "#f76b15",
  messages: "#8e4ec6", embedding: "#d6409f", documents: "#12a594", error: "#e5484d",
};
const KNOWN_CATEGORIES = new Set(["ai", "control", "tool", "human"]);
const MINIMAP_STATUS = {
  queued: "#b9bbc6", running: "#0090ff", succeeded: "#30a46c", failed: "#e5484d", waiting: "#ffb224",
};

function portTitle(name, port, direction) {
  const need = direction === "in" ? (port.required ? ", required" : ", optional") : "";
  const text = port.description ? ` — ${port.description}` : "";
  return `${direction === "in" ? "input" : "output"} "${name}": ${port.type}${need}${text}`;
}

function PortRow({ name, port, direction, detailed }) {
  const isIn = direction === "in";
  const isError = !isIn && name === ERROR_PORT;
  const title = isError ? 'output "error": json — fires when the node fails after its retries' : portTitle(name, port, direction);
  let text = null;
  if (detailed) {
    const kind = <span className="fl-ptype">{isError ? "on error" : port.type}</span>;
    text = isIn ? <>{<span>{name}</span>}{kind}</> : <>{kind}{<span>{name}</span>}</>;
  }
  return (
    <div className={`fl-port${isError ? " err" : ""}`} title={title} data-port={name} data-port-type={port.type}>
      <Handle
        type={isIn ? "target" : "source"}
        position={isIn ? Position.Left : Position.Right}
        id={name}
        className="fl-handle"
        title={title}
        style={{ "--port": PORT_COLORS[isError ? "error" : port.type] || PORT_COLORS.any }}
      />
      {text}
    </div>
  );
}

// Zoomed far out, a node keeps its box and handles (edges need them) but drops its small print.
const detailedZoom = (s) => s.transform[2] >= DETAIL_ZOOM;

function portsOf(data, types) {
  const spec = types[data.t] || { label: data.t, category: "other", icon: "box", inputs: {}, outputs: {} };
  const outputs = { ...(data.outs || spec.outputs) };
  if (data.t !== "end") outputs[ERROR_PORT] = { type: "json" };
  return { spec, inputs: spec.inputs, outputs };
}

const FlowNode = memo(function FlowNode({ data }) {
  const { types, icons } = useContext(CanvasContext);
  const detailed = useStore(detailedZoom);
  const { spec, inputs, outputs } = portsOf(data, types);
  const category = KNOWN_CATEGORIES.has(spec.category) ? spec.category : "other";
  const status = data.status || "";
  const issue = data.issue;
  const classes = ["fl-node", `fl-cat-${category}`];
  if (issue) classes.push(`invalid-${issue.level}`);
  if (!detailed) classes.push("fl-compact");
  return (
    <div
      className={classes.join(" ")}
      data-testid="flow-node"
      data-node-id={data.id}
      data-node-type={data.t}
      data-status={status || "idle"}
      data-invalid={issue ? issue.level : undefined}
    >
      <div className="fl-head">
        <div className="fl-icon">{icons[spec.icon] || icons.box}</div>
        <div className="fl-titles">
          <div className="fl-label" title={data.label || data.id}>{data.label || data.id}</div>
          {detailed ? <div className="fl-type">{data.id} · {spec.label}</div> : null}
        </div>
        {status ? <span className="fl-badge" data-testid="node-status">{status}</span> : null}
      </div>
      <div className="fl-ports">
        <div className="fl-col in">
          {Object.entries(inputs).map(([name, port]) => (
            <PortRow key={name} name={name} port={port} direction="in" detailed={detailed} />
          ))}
        </div>
        <div className="fl-col out">
          {Object.entries(outputs).map(([name, port]) => (
            <PortRow key={name} name={name} port={port} direction="out" detailed={detailed} />
          ))}
        </div>
      </div>
      {issue && detailed ? <div className={`fl-issue ${issue.level}`} title={issue.text}>{issue.text}</div> : null}
    </div>
  );
});

const NODE_TYPES = { fl: FlowNode };

// A big graph's minimap: one <canvas> instead of an SVG element (and a store subscription) per node.
const MAP_W = 200;
const MAP_H = 150;
const nodesAndViewport = (s) => s.transform;

function CanvasMiniMap({ nodes }) {
  const canvas = useRef(null);
  const transform = useStore(nodesAndViewport);
  const storeApi = useStoreApi();
  const flow = useReactFlow();
  const frame = useRef(null);
  useEffect(() => {
    const el = canvas.current;
    if (!el) return;
    const boxes = nodes.map((n) => ({ x: n.position.x, y: n.position.y, w: n.initialWidth || NODE_WIDTH, h: n.initialHeight || 80 }));
    const bounds = boundsOf(boxes);
    if (!bounds) return;
    const scale = Math.min(MAP_W / bounds.width, MAP_H / bounds.height) * 0.9;
    const ox = (MAP_W - bounds.width * scale) / 2 - bounds.x * scale;
    const oy = (MAP_H - bounds.height * scale) / 2 - bounds.y * scale;
    frame.current = { scale, ox, oy };
    const ctx = el.getContext("2d");
    ctx.clearRect(0, 0, MAP_W, MAP_H);
    nodes.forEach((n, i) => {
      ctx.fillStyle = MINIMAP_STATUS[n.data.status] || "#cdced6";
      const b = boxes[i];
      ctx.fillRect(ox + b.x * scale, oy + b.y * scale, Math.max(b.w * scale, 1), Math.max(b.h * scale, 1));
    });
    const { width, height } = storeApi.getState();
    const [tx, ty, zoom] = transform;
    ctx.strokeStyle = "#6e56cf";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(ox + (-tx / zoom) * scale, oy + (-ty / zoom) * scale, (width / zoom) * scale, (height / zoom) * scale);
  }, [nodes, transform, storeApi]);
  const centre = (event) => {
    if (!frame.current || !(event.buttons & 1)) return;
    const r = event.currentTarget.getBoundingClientRect();
    const { scale, ox, oy } = frame.current;
    const x = (event.clientX - r.left - ox) / scale;
    const y = (event.clientY - r.top - oy) / scale;
    flow.setCenter(x, y, { zoom: flow.getZoom(), duration: 0 });
  };
  return (
    <Panel position="bottom-right" className="fl-minimap">
      <canvas ref={canvas} width={MAP_W} height={MAP_H} onPointerDown={centre} onPointerMove={centre} />
    </Panel>
  );
}

function boundsOf(boxes) {
  if (!boxes.length) return null;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const b of boxes) {
    x0 = Math.min(x0, b.x);
    y0 = Math.min(y0, b.y);
    x1 = Math.max(x1, b.x + b.w);
    y1 = Math.max(y1, b.y + b.h);
  }
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

// Where a node's handles sit, from the fixed geometry above: React Flow then needs to draw only
// the nodes in view (it draws every node once to measure its handles otherwise).
function nodeHandles(n, types) {
  const { inputs, outputs } = portsOf({ t: n.t, outs: n.outs }, types);
  const rowY = (i) => 1 + HEAD_HEIGHT + PORTS_TOP + i * (PORT_HEIGHT + PORT_GAP) + PORT_HEIGHT / 2 - HANDLE / 2;
  const handles = Object.keys(inputs).map((id, i) => ({
    id, type: "target", position: Position.Left, x: 1 - HANDLE / 2, y: rowY(i), width: HANDLE, height: HANDLE,
  }));
  Object.keys(outputs).forEach((id, i) => handles.push({
    id, type: "source", position: Position.Right, x: NODE_WIDTH - 1 - HANDLE / 2, y: rowY(i), width: HANDLE, height: HANDLE,
  }));
  const rows = Math.max(Object.keys(inputs).length, Object.keys(outputs).length);
  const height = 1 + HEAD_HEIGHT + PORTS_TOP + rows * (PORT_HEIGHT + PORT_GAP) - (rows ? PORT_GAP : 0) + 8 + 1;
  return { handles, height };
}

// The key of what the server says about a node; an unchanged key keeps the client's object.
function serverKey(n) {
  return `${n.t}|${n.label}|${n.outs ? JSON.stringify(n.outs) : ""}`;
}

function mergeNodes(server, previous, statuses, issues, positionsFromServer, types) {
  const prevById = new Map(previous.map((p) => [p.id, p]));
  return server.map((n) => {
    const prev = prevById.get(n.id);
    const status = statuses[n.id] || "";
    const issue = issues[n.id];
    const key = serverKey(n);
    const keepPosition = prev && (prev.dragging || !positionsFromServer);
    const position = keepPosition ? prev.position : { x: n.x, y: n.y };
    if (
      prev && prev.data._key === key && prev.data.status === status && prev.data.issue === issue &&
      prev.position.x === position.x && prev.position.y === position.y
    ) {
      return prev;
    }
    const shape = prev && prev.data._key === key ? prev : { ...nodeHandles(n, types), initialWidth: NODE_WIDTH };
    return {
      ...(prev || {}),
      id: n.id,
      type: "fl",
      handles: shape.handles,
      initialWidth: NODE_WIDTH,
      initialHeight: shape.initialHeight || shape.height,
      position,
      data: { id: n.id, t: n.t, label: n.label, outs: n.outs, status, issue, _key: key },
    };
  });
}

function edgeClass(e, statuses) {
  if (e.sourceHandle === ERROR_PORT) return "fl-edge-error";
  const from = statuses[e.source];
  const to = statuses[e.target];
  if (from === "succeeded" && to) return to === "running" ? "fl-edge-live" : "fl-edge-done";
  return "";
}

function mergeEdges(server, previous, statuses) {
  const prevById = new Map(previous.map((p) => [p.id, p]));
  return server.map((e) => {
    const prev = prevById.get(e.id);
    const className = edgeClass(e, statuses);
    if (
      prev && prev.source === e.source && prev.target === e.target && prev.sourceHandle === e.sourceHandle &&
      prev.targetHandle === e.targetHandle && prev.className === className && prev.label === (e.label || undefined)
    ) {
      return prev;
    }
    return {
      ...(prev || {}),
      id: e.id,
      source: e.source,
      target: e.target,
      sourceHandle: e.sourceHandle,
      targetHandle: e.targetHandle,
      label: e.label || undefined,
      className,
      animated: className === "fl-edge-live",
    };
  });
}

function typingInField(event) {
  const el = event.target;
  if (!el || !el.closest) return false;
  return Boolean(el.closest("input, textarea, select, [contenteditable=true], [role=dialog], [role=menu]"));
}

const DELETE_KEYS = ["Delete", "Backspace"];
const SNAP_GRID = [8, 8];
const SHORTCUTS = { z: "undo", y: "redo", c: "copy", v: "paste", d: "duplicate", s: "save" };

const EMPTY = {};
const EMPTY_LIST = [];

function Canvas(props) {
  const { active = true, statuses = EMPTY, issues = EMPTY, fit = null, focus = null, id } = props;
  // Until Python says the graph is this page's (`active`), draw none of what the tab last showed.
  const serverNodes = (active && props.nodes) || EMPTY_LIST;
  const serverEdges = (active && props.edges) || EMPTY_LIST;
  // The catalogue is a compile-time constant, but Reflex rebuilds its literal on every render.
  const [catalogue] = useState(() => ({ types: props.types || {}, icons: props.icons || {} }));
  const { types } = catalogue;
  // Event props are new functions on every render; read the latest through a ref.
  const handlers = useRef(props);
  handlers.current = props;
  const send = useCallback((name, ...args) => {
    const fn = handlers.current[name];
    if (fn) fn(...args);
  }, []);

  const [nodes, setNodes, onNodesChange] = useNodesState([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState([]);
  const flow = useReactFlow();
  const storeApi = useStoreApi();
  const wrapper = useRef(null);
  const lastServerNodes = useRef(null);
  const lastSelection = useRef("|");

  // Python asks for a fit (load, import, layout, the Fit button) by bumping fit.n. The view is set
  // before the nodes are handed to React Flow, from positions and the fixed node geometry, so a
  // big graph is drawn once, at its final zoom, and only the part in view.
  const fitToken = fit ? fit.n : 0;
  const lastFit = useRef(0);
  useEffect(() => {
    const positionsFromServer = lastServerNodes.current !== serverNodes;
    lastServerNodes.current = serverNodes;
    if (fitToken !== lastFit.current) {
      lastFit.current = fitToken;
      const boxes = positionsFromServer
        ? serverNodes.map((n) => ({ x: n.x, y: n.y, w: NODE_WIDTH, h: nodeHandles(n, types).height }))
        : storeApi.getState().nodes.map((n) => ({
            x: n.position.x, y: n.position.y,
            w: n.measured?.width ?? n.initialWidth ?? NODE_WIDTH, h: n.measured?.height ?? n.initialHeight ?? 80,
          }));
      const bounds = boundsOf(boxes);
      if (bounds && wrapper.current) {
        const { width, height } = wrapper.current.getBoundingClientRect();
        const minZoom = boxes.length >= BIG_GRAPH && !(fit && fit.all) ? BIG_GRAPH_MIN_ZOOM : MIN_ZOOM;
        flow.setViewport(getViewportForBounds(bounds, width, height, minZoom, 1, 0.2), { duration: 0 });
      }
    }
    setNodes((prev) => mergeNodes(serverNodes, prev, statuses, issues, positionsFromServer, types));
  }, [serverNodes, statuses, issues, types, fitToken, setNodes]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    setEdges((prev) => mergeEdges(serverEdges, prev, statuses));
  }, [serverEdges, statuses, setEdges]);

  // Python asks to select nodes (a drop, a paste) and maybe centre one (an issue or a step was clicked).
  useEffect(() => {
    if (!focus || !focus.ids || !focus.ids.length) return;
    const ids = new Set(focus.ids);
    setNodes((prev) => prev.map((n) => (Boolean(n.selected) === ids.has(n.id) ? n : { ...n, selected: ids.has(n.id) })));
    if (!focus.center) return;
    const node = flow.getInternalNode(focus.ids[0]);
    if (node) {
      const w = node.measured?.width || NODE_WIDTH;
      const h = node.measured?.height || 80;
      const pos = node.internals.positionAbsolute;
      flow.setCenter(pos.x + w / 2, pos.y + h / 2, { zoom: Math.max(flow.getZoom(), 0.9), duration: 250 });
    }
  }, [focus && focus.n]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const onKey = (event) => {
      if (!(event.ctrlKey || event.metaKey) || event.altKey || typingInField(event)) return;
      const key = event.key.toLowerCase();
      let action = SHORTCUTS[key];
      if (!action) return;
      if (key === "z" && event.shiftKey) action = "redo";
      if (action === "copy" && String(window.getSelection() || "").length > 0) return;
      event.preventDefault();
      send("onShortcut", action);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [send]);

  const handleDragOver = useCallback((event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  }, []);

  const handleDrop = useCallback(
    (event) => {
      event.preventDefault();
      const kind = event.dataTransfer.getData(DRAG_MIME);
      if (!kind) return;
      const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      send("onDrop", kind, Math.round(at.x - NODE_WIDTH / 2), Math.round(at.y - 22));
    },
    [flow, send],
  );

  const handleDragStop = useCallback(
    (_event, _node, moved) => {
      if (!moved || !moved.length) return;
      send("onMove", moved.map((n) => ({ id: n.id, x: Math.round(n.position.x), y: Math.round(n.position.y) })));
    },
    [send],
  );
  const handleSelectionDragStop = useCallback((event, moved) => handleDragStop(event, null, moved), [handleDragStop]);

  const handleConnect = useCallback(
    (c) => send("onConnect", c.source, c.sourceHandle || "", c.target, c.targetHandle || ""),
    [send],
  );

  const handleSelection = useCallback(
    ({ nodes: selNodes, edges: selEdges }) => {
      const nodeIds = selNodes.map((n) => n.id).sort();
      const edgeIds = selEdges.map((e) => e.id).sort();
      const key = `${nodeIds.join(",")}|${edgeIds.join(",")}`;
      if (key === lastSelection.current) return;
      lastSelection.current = key;
      send("onSelect", nodeIds, edgeIds);
    },
    [send],
  );

  const handleDelete = useCallback(
    ({ nodes: gone, edges: goneEdges }) => send("onDelete", gone.map((n) => n.id), goneEdges.map((e) => e.id)),
    [send],
  );

  const minimapColor = useCallback((n) => MINIMAP_STATUS[n.data.status] || "#cdced6", []);
  const big = nodes.length >= BIG_GRAPH;

  return (
    <CanvasContext.Provider value={catalogue}>
      <div className="fl-canvas" id={id} ref={wrapper} data-node-count={nodes.length}>
        <style>{CSS}</style>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={NODE_TYPES}
          onNodesChange={onNodesChange}
          onEdgesChange={onEdgesChange}
          onNodeDragStop={handleDragStop}
          onSelectionDragStop={handleSelectionDragStop}
          onConnect={handleConnect}
          onSelectionChange={handleSelection}
          onDelete={handleDelete}
          onDrop={handleDrop}
          onDragOver={handleDragOver}
          deleteKeyCode={DELETE_KEYS}
          onlyRenderVisibleElements={big}
          minZoom={MIN_ZOOM}
          maxZoom={2}
          snapToGrid
          snapGrid={SNAP_GRID}
        >
          <Background gap={16} size={1.2} color="#d5d8de" />
          <Controls showInteractive={false} showFitView={false} />
          {big ? (
            <CanvasMiniMap nodes={nodes} />
          ) : (
            <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={0} maskColor="rgba(240,240,243,.6)" />
          )}
        </ReactFlow>
        {serverNodes.length === 0 ? (
          <div className="fl-empty"><div>Drag a node from the palette to start</div></div>
        ) : null}
      </div>
    </CanvasContext.Provider>
  );
}

export function FlowCanvas(props) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}
