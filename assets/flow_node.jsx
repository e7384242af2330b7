// Flowloom's node for React Flow: icon, label, status badge and typed port handles.
//
// The geometry is fixed (header, port rows, handle size), so nodeHandles() knows where every
// handle sits before a node is drawn; React Flow then draws only the nodes in view.
import React, { createContext, memo, useContext } from "react";
import { Handle, Position, useStore } from "@xyflow/react";

const DETAIL_ZOOM = 0.4; // below this zoom a node is drawn without its port labels
export const NODE_WIDTH = 224;
export const ERROR_PORT = "error";
// Fixed geometry, so a node's handles are known before it is drawn (see nodeHandles).
const HEAD_HEIGHT = 46;
const PORTS_TOP = 8; // 1px rule + padding above the first port row
const PORT_HEIGHT = 20;
const PORT_GAP = 2;
const HANDLE = 10;

export const CanvasContext = createContext({ types: {}, icons: {} });

export const CSS = `
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
export const MINIMAP_STATUS = {
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

export const NODE_TYPES = { fl: FlowNode };

export function boundsOf(boxes) {
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
export function nodeHandles(n, types) {
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
