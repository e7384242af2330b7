// Flowloom's workflow canvas: React Flow (@xyflow/react 12) with Flowloom's node renderer.
//
// Python owns the graph (nodes, edges, their configs); this component owns what only the
// browser needs: drag positions while dragging, selection, viewport, measured sizes.
// It sends coarse events to Python (drop, drag stop, connect, select, delete, shortcut)
// and never forwards DOM events.
import React, { createContext, memo, useCallback, useContext, useEffect, useMemo, useRef } from "react";
import {
  Background,
  Controls,
  Handle,
  MiniMap,
  Position,
  ReactFlow,
  ReactFlowProvider,
  useEdgesState,
  useNodesState,
  useReactFlow,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";

const DRAG_MIME = "application/reactflow";
const BIG_GRAPH = 200; // from this many nodes on, only visible elements are rendered
const NODE_WIDTH = 224;
const ERROR_PORT = "error";

const CanvasContext = createContext({ types: {}, icons: {} });

const CSS = `
.fl-canvas { position: relative; width: 100%; height: 100%; background: #f8f9fb; }
.fl-canvas .react-flow__node-fl { padding: 0; border: none; background: transparent; box-shadow: none; }
.fl-node { width: ${NODE_WIDTH}px; background: #fff; border: 1px solid #dfe3ea; border-radius: 12px;
  box-shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08); font-size: 12px; color: #1c2024;
  font-family: Inter, ui-sans-serif, system-ui, sans-serif; transition: box-shadow .2s, border-color .2s; }
.react-flow__node.selected .fl-node { border-color: #8e7cf0; box-shadow: 0 0 0 2px #8e7cf0, 0 4px 12px rgba(110,86,207,.18); }
.fl-head { display: flex; align-items: center; gap: 8px; padding: 8px 10px 7px; }
.fl-icon { flex: none; width: 28px; height: 28px; border-radius: 8px; display: flex; align-items: center;
  justify-content: center; background: var(--cat-bg); color: var(--cat-fg); }
.fl-titles { flex: 1; min-width: 0; }
.fl-label { font-weight: 600; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.fl-type { color: #80838d; font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.fl-badge { flex: none; font-size: 10px; font-weight: 600; padding: 2px 7px; border-radius: 999px;
  text-transform: capitalize; background: #f0f0f3; color: #60646c; }
.fl-ports { display: flex; justify-content: space-between; gap: 6px; padding: 2px 0 8px;
  border-top: 1px solid #eff1f4; }
.fl-col { display: flex; flex-direction: column; gap: 2px; padding-top: 6px; min-width: 0; }
.fl-col.out { align-items: flex-end; }
.fl-port { position: relative; height: 20px; display: flex; align-items: center; gap: 5px; padding: 0 12px;
  color: #60646c; font-size: 11px; white-space: nowrap; }
.fl-port .fl-ptype { color: #b0b4ba; font-size: 10px; }
.fl-port.err { color: #ce2c31; }
.fl-canvas .react-flow__handle.fl-handle { width: 10px; height: 10px; border: 2px solid #fff;
  background: var(--port, #8b8d98); box-shadow: 0 0 0 1px rgba(0,0,0,.12); }
.fl-canvas .react-flow__handle.fl-handle:hover { transform: translate(-50%, -50%) scale(1.35); }
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

function PortRow({ name, port, direction }) {
  const isIn = direction === "in";
  const isError = !isIn && name === ERROR_PORT;
  const title = isError ? 'output "error": json — fires when the node fails after its retries' : portTitle(name, port, direction);
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
      {isIn ? (
        <>
          <span>{name}</span>
          <span className="fl-ptype">{port.type}</span>
        </>
      ) : (
        <>
          <span className="fl-ptype">{isError ? "on error" : port.type}</span>
          <span>{name}</span>
        </>
      )}
    </div>
  );
}

const FlowNode = memo(function FlowNode({ data }) {
  const { types, icons } = useContext(CanvasContext);
  const spec = types[data.t] || { label: data.t, category: "other", icon: "box", inputs: {}, outputs: {} };
  const outputs = data.outs || spec.outputs;
  const category = KNOWN_CATEGORIES.has(spec.category) ? spec.category : "other";
  const status = data.status || "";
  const issue = data.issue;
  const classes = ["fl-node", `fl-cat-${category}`];
  if (issue) classes.push(`invalid-${issue.level}`);
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
          <div className="fl-type">{data.id} · {spec.label}</div>
        </div>
        {status ? <span className="fl-badge" data-testid="node-status">{status}</span> : null}
      </div>
      <div className="fl-ports">
        <div className="fl-col in">
          {Object.entries(spec.inputs).map(([name, port]) => (
            <PortRow key={name} name={name} port={port} direction="in" />
          ))}
        </div>
        <div className="fl-col out">
          {Object.entries(outputs).map(([name, port]) => (
            <PortRow key={name} name={name} port={port} direction="out" />
          ))}
          {spec.category === "control" && data.t === "end" ? null : (
            <PortRow name={ERROR_PORT} port={{ type: "json" }} direction="out" />
          )}
        </div>
      </div>
      {issue ? <div className={`fl-issue ${issue.level}`} title={issue.text}>{issue.text}</div> : null}
    </div>
  );
});

const NODE_TYPES = { fl: FlowNode };

// The key of what the server says about a node; an unchanged key keeps the client's object.
function serverKey(n) {
  return `${n.t}|${n.label}|${n.outs ? JSON.stringify(n.outs) : ""}`;
}

function mergeNodes(server, previous, statuses, issues, positionsFromServer) {
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
    return {
      ...(prev || {}),
      id: n.id,
      type: "fl",
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

const SHORTCUTS = { z: "undo", y: "redo", c: "copy", v: "paste", d: "duplicate", s: "save" };

function Canvas(props) {
  const {
    nodes: serverNodes = [], edges: serverEdges = [], statuses = {}, issues = {}, types = {}, icons = {},
    fitToken = 0, focus = null, onDrop, onMove, onConnect, onSelect, onDelete, onShortcut, id,
  } = props;
  const [nodes, setNodes, onNodesChange] = useNodesState([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState([]);
  const flow = useReactFlow();
  const wrapper = useRef(null);
  const lastServerNodes = useRef(null);
  const lastSelection = useRef("|");
  const fitted = useRef(false);

  useEffect(() => {
    const positionsFromServer = lastServerNodes.current !== serverNodes;
    lastServerNodes.current = serverNodes;
    setNodes((prev) => mergeNodes(serverNodes, prev, statuses, issues, positionsFromServer));
  }, [serverNodes, statuses, issues, setNodes]);

  useEffect(() => {
    setEdges((prev) => mergeEdges(serverEdges, prev, statuses));
  }, [serverEdges, statuses, setEdges]);

  // Fit the view when the first nodes arrive and whenever Python asks (load, import, layout).
  useEffect(() => {
    if (!serverNodes.length) return;
    if (fitted.current && fitted.current === fitToken) return;
    fitted.current = fitToken || true;
    const timer = setTimeout(() => flow.fitView({ padding: 0.2, maxZoom: 1.1, duration: 0 }), 30);
    return () => clearTimeout(timer);
  }, [fitToken, serverNodes.length, flow]);

  // Python asks to show one node (an issue or a run step was clicked): select and centre it.
  useEffect(() => {
    if (!focus || !focus.id) return;
    setNodes((prev) => prev.map((n) => (n.selected === (n.id === focus.id) ? n : { ...n, selected: n.id === focus.id })));
    const node = flow.getInternalNode(focus.id);
    if (node) {
      const w = node.measured?.width || NODE_WIDTH;
      const h = node.measured?.height || 80;
      const pos = node.internals.positionAbsolute;
      flow.setCenter(pos.x + w / 2, pos.y + h / 2, { zoom: Math.max(flow.getZoom(), 0.9), duration: 250 });
    }
  }, [focus && focus.n, focus && focus.id]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const onKey = (event) => {
      if (!(event.ctrlKey || event.metaKey) || event.altKey || typingInField(event)) return;
      const key = event.key.toLowerCase();
      let action = SHORTCUTS[key];
      if (!action) return;
      if (key === "z" && event.shiftKey) action = "redo";
      if (action === "copy" && String(window.getSelection() || "").length > 0) return;
      event.preventDefault();
      if (onShortcut) onShortcut(action);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [onShortcut]);

  const handleDragOver = useCallback((event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  }, []);

  const handleDrop = useCallback(
    (event) => {
      event.preventDefault();
      const kind = event.dataTransfer.getData(DRAG_MIME);
      if (!kind || !onDrop) return;
      const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      onDrop(kind, Math.round(at.x - NODE_WIDTH / 2), Math.round(at.y - 22));
    },
    [flow, onDrop],
  );

  const handleDragStop = useCallback(
    (_event, _node, moved) => {
      if (!onMove || !moved || !moved.length) return;
      onMove(moved.map((n) => ({ id: n.id, x: Math.round(n.position.x), y: Math.round(n.position.y) })));
    },
    [onMove],
  );

  const handleConnect = useCallback(
    (c) => onConnect && onConnect(c.source, c.sourceHandle || "", c.target, c.targetHandle || ""),
    [onConnect],
  );

  const handleSelection = useCallback(
    ({ nodes: selNodes, edges: selEdges }) => {
      const nodeIds = selNodes.map((n) => n.id).sort();
      const edgeIds = selEdges.map((e) => e.id).sort();
      const key = `${nodeIds.join(",")}|${edgeIds.join(",")}`;
      if (key === lastSelection.current) return;
      lastSelection.current = key;
      if (onSelect) onSelect(nodeIds, edgeIds);
    },
    [onSelect],
  );

  const handleDelete = useCallback(
    ({ nodes: gone, edges: goneEdges }) => {
      if (onDelete) onDelete(gone.map((n) => n.id), goneEdges.map((e) => e.id));
    },
    [onDelete],
  );

  const minimapColor = useCallback((n) => MINIMAP_STATUS[n.data.status] || "#cdced6", []);
  const context = useMemo(() => ({ types, icons }), [types, icons]);
  const big = nodes.length >= BIG_GRAPH;

  return (
    <CanvasContext.Provider value={context}>
      <div className="fl-canvas" ref={wrapper} id={id} data-node-count={nodes.length}>
        <style>{CSS}</style>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={NODE_TYPES}
          onNodesChange={onNodesChange}
          onEdgesChange={onEdgesChange}
          onNodeDragStop={handleDragStop}
          onSelectionDragStop={(event, moved) => handleDragStop(event, null, moved)}
          onConnect={handleConnect}
          onSelectionChange={handleSelection}
          onDelete={handleDelete}
          onDrop={handleDrop}
          onDragOver={handleDragOver}
          deleteKeyCode={["Delete", "Backspace"]}
          onlyRenderVisibleElements={big}
          minZoom={0.05}
          maxZoom={2}
          snapToGrid
          snapGrid={[8, 8]}
          defaultEdgeOptions={{ type: "default" }}
          fitView
        >
          <Background gap={16} size={1.2} color="#d5d8de" />
          <Controls showInteractive={false} />
          <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={0} maskColor="rgba(240,240,243,.6)" />
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
