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

// Every colour is a Radix Themes token (var(--gray-2), var(--red-9), ...), which the theme switches
// between light and dark with the app's colour mode: nothing here is a fixed colour.
// React Flow puts a "light" (or "dark") class on its root, and Radix Themes defines its colour
// scales on `.light` / `.dark` too: inside the canvas they would be redefined for React Flow's mode
// (and the plain gray instead of the theme's slate). Every scale the canvas uses inherits instead.
const SCALES = ["gray", "red", "green", "blue", "amber", "violet", "teal", "indigo", "orange", "purple", "pink"];
const INHERIT_SCALES = SCALES.flatMap((c) =>
  Array.from({ length: 12 }, (_, i) => `--${c}-${i + 1}: inherit; --${c}-a${i + 1}: inherit;`),
).join(" ");

export const CSS = `
.fl-canvas { position: relative; width: 100%; height: 100%; background: var(--gray-2); color: var(--gray-12); }
.fl-canvas .react-flow { ${INHERIT_SCALES} }
.fl-canvas .react-flow {
  --xy-background-color: var(--gray-2); --xy-edge-stroke: var(--gray-9); --xy-edge-stroke-selected: var(--accent-9);
  --xy-connectionline-stroke: var(--accent-9); --xy-edge-label-background-color: var(--color-panel-solid);
  --xy-edge-label-color: var(--gray-12); --xy-minimap-background-color: var(--color-panel-solid);
  --xy-minimap-mask-background-color: var(--gray-a4); --xy-minimap-mask-stroke-color: var(--accent-9);
  --xy-minimap-node-background-color: var(--gray-7); --xy-controls-button-background-color: var(--color-panel-solid);
  --xy-controls-button-background-color-hover: var(--gray-3); --xy-controls-button-color: var(--gray-12);
  --xy-controls-button-color-hover: var(--gray-12); --xy-controls-button-border-color: var(--gray-5);
  --xy-controls-box-shadow: 0 1px 3px var(--black-a4); --xy-selection-background-color: var(--accent-a3);
  --xy-selection-border: 1px dotted var(--accent-8); --xy-attribution-background-color: var(--color-panel-translucent);
  --xy-handle-border-color: var(--color-panel-solid); --xy-node-color: var(--gray-12);
}
.fl-canvas .react-flow__attribution a { color: var(--gray-11); }
.fl-canvas .react-flow__node-fl { padding: 0; border: none; background: transparent; box-shadow: none; }
.fl-canvas .react-flow__node-fl:focus-visible { outline: none; }
.fl-canvas .react-flow__node-fl:focus-visible .fl-node { outline: 2px solid var(--accent-9); outline-offset: 3px; }
.fl-node { box-sizing: border-box; width: ${NODE_WIDTH}px; background: var(--color-panel-solid); border: 1px solid var(--gray-6);
  border-radius: 12px; box-shadow: 0 1px 2px var(--black-a2), 0 1px 3px var(--black-a3); font-size: 12px; color: var(--gray-12);
  font-family: Inter, ui-sans-serif, system-ui, sans-serif; transition: box-shadow .2s, border-color .2s; }
.react-flow__node.selected .fl-node { outline: 2px solid var(--accent-8); outline-offset: 3px; }
/* A dragged node gets a layer of its own: moving it composites instead of repainting what is under it. */
.fl-canvas .react-flow__node.dragging { will-change: transform; }
.fl-head { box-sizing: border-box; height: ${HEAD_HEIGHT}px; display: flex; align-items: center; gap: 8px; padding: 0 10px; }
.fl-icon { flex: none; width: 28px; height: 28px; border-radius: 8px; display: flex; align-items: center;
  justify-content: center; background: var(--cat-bg); color: var(--cat-fg); }
.fl-titles { flex: 1; min-width: 0; }
.fl-label { font-weight: 600; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.fl-type { color: var(--gray-11); font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.fl-node { position: relative; }
.fl-badge { position: absolute; top: -9px; right: 10px; font-size: 10px; font-weight: 600; line-height: 14px;
  padding: 1px 8px; border-radius: 999px; text-transform: capitalize; background: var(--gray-3); color: var(--gray-11);
  border: 1px solid var(--color-panel-solid); box-shadow: 0 1px 2px var(--black-a3); }
.fl-phase { position: absolute; top: -9px; left: 10px; font-size: 10px; font-weight: 600; line-height: 14px;
  padding: 1px 7px; border-radius: 999px; background: var(--indigo-3); color: var(--indigo-11);
  border: 1px solid var(--color-panel-solid); box-shadow: 0 1px 2px var(--black-a3); }
.fl-ports { display: flex; justify-content: space-between; gap: 6px; padding: ${PORTS_TOP - 1}px 0 8px;
  border-top: 1px solid var(--gray-4); }
.fl-col { display: flex; flex-direction: column; gap: ${PORT_GAP}px; min-width: 0; }
.fl-col.out { align-items: flex-end; }
.fl-port { position: relative; height: ${PORT_HEIGHT}px; min-width: 24px; display: flex; align-items: center; gap: 5px; padding: 0 12px;
  color: var(--gray-11); font-size: 11px; white-space: nowrap; }
.fl-port .fl-ptype { color: var(--gray-11); font-size: 10px; font-style: italic; }
.fl-port.err { color: var(--red-11); }
.fl-canvas .react-flow__handle.fl-handle { box-sizing: border-box; width: ${HANDLE}px; height: ${HANDLE}px;
  border: 2px solid var(--color-panel-solid); background: var(--port, var(--gray-9)); box-shadow: 0 0 0 1px var(--black-a3); }
.fl-canvas .react-flow__handle.fl-handle:hover { box-shadow: 0 0 0 4px var(--accent-a6); }
.fl-canvas .react-flow__handle.fl-handle.connectingto { background: var(--accent-9); }
.fl-issue { margin: 0 8px 8px; padding: 4px 7px; border-radius: 6px; font-size: 11px; line-height: 1.35;
  background: var(--red-3); color: var(--red-11); overflow: hidden; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.fl-issue.warning { background: var(--amber-3); color: var(--amber-11); }
.fl-node.invalid-error { border-color: var(--red-9); box-shadow: 0 0 0 3px var(--red-a6); }
.fl-node.invalid-warning { border-color: var(--amber-9); box-shadow: 0 0 0 3px var(--amber-a6); }
.fl-node[data-status="queued"] { border-color: var(--gray-8); }
.fl-node[data-status="queued"] .fl-badge { background: var(--gray-3); color: var(--gray-11); }
.fl-node[data-status="running"] { border-color: var(--blue-9); animation: fl-pulse 1.2s ease-in-out infinite; }
.fl-node[data-status="running"] .fl-badge { background: var(--blue-3); color: var(--blue-11); }
.fl-node[data-status="succeeded"] { border-color: var(--green-9); box-shadow: 0 0 0 3px var(--green-a6); }
.fl-node[data-status="succeeded"] .fl-badge { background: var(--green-3); color: var(--green-11); }
.fl-node[data-status="failed"] { border-color: var(--red-9); box-shadow: 0 0 0 3px var(--red-a6); }
.fl-node[data-status="failed"] .fl-badge { background: var(--red-3); color: var(--red-11); }
.fl-node[data-status="waiting"] { border-color: var(--amber-9); box-shadow: 0 0 0 3px var(--amber-a6); }
.fl-node[data-status="waiting"] .fl-badge { background: var(--amber-3); color: var(--amber-11); }
.fl-node[data-status="skipped"], .fl-node[data-status="cancelled"] { opacity: .55; border-style: dashed; }
@keyframes fl-pulse { 0%,100% { box-shadow: 0 0 0 2px var(--blue-a5); } 50% { box-shadow: 0 0 0 6px var(--blue-a3); } }
.fl-cat-ai { --cat-bg: var(--violet-3); --cat-fg: var(--violet-11); }
.fl-cat-control { --cat-bg: var(--gray-3); --cat-fg: var(--gray-11); }
.fl-cat-tool { --cat-bg: var(--blue-3); --cat-fg: var(--blue-11); }
.fl-cat-human { --cat-bg: var(--amber-3); --cat-fg: var(--amber-11); }
.fl-cat-memory { --cat-bg: var(--green-3); --cat-fg: var(--green-11); }
.fl-cat-other { --cat-bg: var(--teal-3); --cat-fg: var(--teal-11); }
.fl-canvas .react-flow__edge-path { stroke: var(--gray-9); stroke-width: 1.6; }
.fl-canvas .react-flow__edge.selected .react-flow__edge-path { stroke: var(--accent-9); stroke-width: 2.2; }
.fl-canvas .react-flow__edge.fl-edge-error .react-flow__edge-path { stroke: var(--red-9); stroke-dasharray: 5 4; }
.fl-canvas .react-flow__edge.fl-edge-done .react-flow__edge-path { stroke: var(--green-9); stroke-width: 2.2; }
.fl-canvas .react-flow__edge.fl-edge-live .react-flow__edge-path { stroke: var(--blue-9); stroke-width: 2.2; }
.fl-node.fl-compact .fl-label { font-size: 15px; flex: 1; min-width: 0; }
.fl-minimap canvas { display: block; background: var(--color-panel-solid); border-radius: 6px;
  box-shadow: 0 1px 3px var(--black-a4); cursor: pointer; }
.fl-empty { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  pointer-events: none; color: var(--gray-11); font-size: 14px; font-family: Inter, ui-sans-serif, system-ui, sans-serif; }
.fl-empty div { padding: 14px 18px; border: 1px dashed var(--gray-7); border-radius: 12px; background: var(--color-panel-translucent); }
`;

const PORT_COLORS = {
  any: "var(--gray-9)", json: "var(--indigo-9)", object: "var(--violet-9)", list: "var(--amber-10)",
  text: "var(--green-9)", number: "var(--blue-9)",
  boolean: "var(--orange-9)", messages: "var(--purple-9)", embedding: "var(--pink-9)", documents: "var(--teal-9)",
  error: "var(--red-9)",
};
const KNOWN_CATEGORIES = new Set(["ai", "control", "memory", "tool", "human"]);
// CSS colours (theme tokens): SVG styles take them as they are; a <canvas> resolves them (cssColor).
export const MINIMAP_STATUS = {
  queued: "var(--gray-8)", running: "var(--blue-9)", succeeded: "var(--green-9)", failed: "var(--red-9)",
  waiting: "var(--amber-9)",
};
export const MINIMAP_IDLE = "var(--gray-7)";

// The colour a CSS value such as "var(--green-9)" has at `element` now (for drawing on a <canvas>).
export function cssColor(element, value) {
  const match = /^var\((--[\w-]+)\)$/.exec(value);
  if (!match || !element) return value;
  return getComputedStyle(element).getPropertyValue(match[1]).trim() || "#888";
}

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
  // A node's inputs may come from its config too (a sub-workflow's are the called workflow's inputs).
  return { spec, inputs: data.ins || spec.inputs, outputs };
}

// Zoomed far out ("fit all" on a big graph mounts every node at once) a node is its box, its label,
// its marks and bare handles at the same fixed geometry: about a quarter of the DOM of a full node,
// and the same size, so edges and measurements do not move when the zoom crosses DETAIL_ZOOM.
function CompactNode({ data, classes, inputs, outputs }) {
  const status = data.status || "";
  const handles = (ports, type, position) => Object.keys(ports).map((name, i) => (
    <Handle key={name} type={type} position={position} id={name} className="fl-handle"
            style={{ top: HEAD_HEIGHT + PORTS_TOP + i * (PORT_HEIGHT + PORT_GAP) + PORT_HEIGHT / 2,
                     "--port": PORT_COLORS[name === ERROR_PORT ? "error" : ports[name].type] || PORT_COLORS.any }} />
  ));
  const rows = Math.max(Object.keys(inputs).length, Object.keys(outputs).length);
  const height = 1 + HEAD_HEIGHT + PORTS_TOP + rows * (PORT_HEIGHT + PORT_GAP) - (rows ? PORT_GAP : 0) + 8 + 1;
  return (
    <div
      className={classes.join(" ")}
      style={{ height }}
      data-testid="flow-node"
      data-node-id={data.id}
      data-node-type={data.t}
      data-status={status || "idle"}
      data-invalid={data.issue ? data.issue.level : undefined}
      data-diff={data.d || undefined}
      data-phase={data.phase || undefined}
    >
      {data.d ? <span className={`fl-diff-tag ${data.d}`} data-testid="diff-tag">{data.d}</span> : null}
      <div className="fl-head">
        <div className="fl-label" title={data.label || data.id}>{data.label || data.id}</div>
        {status ? <span className="fl-badge" data-testid="node-status">{status}</span> : null}
      </div>
      {handles(inputs, "target", Position.Left)}
      {handles(outputs, "source", Position.Right)}
    </div>
  );
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
  if (data.d) classes.push(`fl-diff-${data.d}`); // a version diff's mark (assets/flow_annotations.jsx)
  if (!detailed) return <CompactNode data={data} classes={classes} inputs={inputs} outputs={outputs} />;
  return (
    <div
      className={classes.join(" ")}
      data-testid="flow-node"
      data-node-id={data.id}
      data-node-type={data.t}
      data-status={status || "idle"}
      data-invalid={issue ? issue.level : undefined}
      data-diff={data.d || undefined}
      data-phase={data.phase || undefined}
    >
      {data.d ? <span className={`fl-diff-tag ${data.d}`} data-testid="diff-tag">{data.d}</span> : null}
      <div className="fl-head">
        <div className="fl-icon">{icons[spec.icon] || icons.box}</div>
        <div className="fl-titles">
          <div className="fl-label" title={data.label || data.id}>{data.label || data.id}</div>
          {detailed ? <div className="fl-type">{data.id} · {spec.label}</div> : null}
        </div>
        {status ? <span className="fl-badge" data-testid="node-status">{status}</span> : null}
        {data.phase ? (
          <span className="fl-phase" data-testid="node-phase" title={`Phase ${data.phase} of the execution plan`}>
            {`P${data.phase}`}
          </span>
        ) : null}
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
  const { inputs, outputs } = portsOf({ t: n.t, outs: n.outs, ins: n.ins }, types);
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
