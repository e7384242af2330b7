// Flowloom's workflow canvas: React Flow (@xyflow/react 12) with Flowloom's node renderer.
//
// Python owns the graph (nodes, edges, their configs); this component owns what only the
// browser needs: drag positions while dragging, selection, viewport, measured sizes.
// It sends coarse events to Python (drop, drag stop, connect, select, delete, shortcut)
// and never forwards DOM events.
import React, { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background,
  Controls,
  getViewportForBounds,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useEdgesState,
  useNodesState,
  useReactFlow,
  useStoreApi,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";

import { CanvasMiniMap } from "./flow_minimap.jsx";
import {
  ANNOTATION_CSS, ANNOTATION_TYPES, AnnotateContext, annotationBoxes, groupDragMove, groupDragStart, isAnnotation,
  mergeAnnotations,
} from "./flow_annotations.jsx";
import {
  boundsOf, CanvasContext, CSS, ERROR_PORT, MINIMAP_IDLE, MINIMAP_STATUS, NODE_TYPES, NODE_WIDTH, nodeHandles,
} from "./flow_node.jsx";

const DRAG_MIME = "application/reactflow";
// The palette's keyboard path (Enter on an item) asks for a node with this DOM event; see addNodeEvent.
export const ADD_NODE_EVENT = "flowloom:add-node";
const ADD_STEP = 64; // a node added from the keyboard goes below any node already at the spot
const KEY_MOVE_REST_MS = 400; // arrow-key moves are sent once the keys rest this long
const BIG_GRAPH = 200; // from this many nodes on, only visible elements are rendered
const MIN_ZOOM = 0.05;
const FIT_PADDING = 0.12;
const BIG_GRAPH_MIN_ZOOM = 0.4; // a big graph opens readable, centred, rather than as specks

// The key of what the server says about a node; an unchanged key keeps the client's object.
function serverKey(n) {
  return `${n.t}|${n.label}|${n.outs ? JSON.stringify(n.outs) : ""}|${n.ins ? JSON.stringify(n.ins) : ""}|${n.d || ""}`;
}
// Flowloom's nodes, sticky notes and groups (assets/flow_annotations.jsx).
const ALL_NODE_TYPES = { ...NODE_TYPES, ...ANNOTATION_TYPES };
// What the toolbar asks the canvas for with DOM events (it knows the view and the measured sizes).
export const ADD_NOTE_EVENT = "flowloom:add-note";
export const GROUP_SELECTION_EVENT = "flowloom:group-selection";

function mergeNodes(server, previous, statuses, issues, positionsFromServer, types, phases = EMPTY) {
  const prevById = new Map(previous.map((p) => [p.id, p]));
  return server.map((n) => {
    const prev = prevById.get(n.id);
    const status = statuses[n.id] || "";
    const issue = issues[n.id];
    const phase = phases[n.id] || 0; // the node's phase in the last validated execution plan
    const key = serverKey(n);
    const keepPosition = prev && (prev.dragging || !positionsFromServer);
    const position = keepPosition ? prev.position : { x: n.x, y: n.y };
    if (
      prev && prev.data._key === key && prev.data.status === status && prev.data.issue === issue && prev.data.phase === phase &&
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
      data: { id: n.id, t: n.t, label: n.label, outs: n.outs, ins: n.ins, status, issue, phase, d: n.d, _key: key },
    };
  });
}

function edgeClass(e, statuses) {
  if (e.d) return `fl-diff-${e.d}`; // a version diff: added, removed, changed
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
const PASTE_WAIT_MS = 150; // Ctrl+V: how long to wait for the browser's paste event before pasting this tab's copy

const EMPTY = {};
const EMPTY_LIST = [];

function Canvas(props) {
  const { active = true, statuses = EMPTY, issues = EMPTY, phases = EMPTY, fit = null, focus = null, id } = props;
  // A version diff ({nodes, edges, annotations} marked with `d`) is shown instead of the graph, read-only.
  const diffView = active && props.diff && props.diff.nodes ? props.diff : null;
  const readonly = Boolean(props.readonly) || Boolean(diffView);
  // Until Python says the graph is this page's (`active`), draw none of what the tab last showed.
  const serverNodes = diffView ? diffView.nodes : (active && props.nodes) || EMPTY_LIST;
  const serverEdges = diffView ? diffView.edges : (active && props.edges) || EMPTY_LIST;
  const serverAnnotations = diffView ? diffView.annotations || EMPTY : (active && props.annotations) || EMPTY;
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
  const lastAnnotations = useRef(null);
  const lastSelection = useRef("|");
  const pasteFallback = useRef(null);

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
            .concat(annotationBoxes(serverAnnotations))
        : storeApi.getState().nodes.map((n) => ({
            x: n.position.x, y: n.position.y,
            w: n.measured?.width ?? n.initialWidth ?? NODE_WIDTH, h: n.measured?.height ?? n.initialHeight ?? 80,
          }));
      const bounds = boundsOf(boxes);
      if (bounds && wrapper.current) {
        const { width, height } = wrapper.current.getBoundingClientRect();
        const minZoom = boxes.length >= BIG_GRAPH && !(fit && fit.all) ? BIG_GRAPH_MIN_ZOOM : MIN_ZOOM;
        flow.setViewport(getViewportForBounds(bounds, width, height, minZoom, 1, FIT_PADDING), { duration: 0 });
      }
    }
    const annotationsFromServer = lastAnnotations.current !== serverAnnotations;
    lastAnnotations.current = serverAnnotations;
    setNodes((prev) => {
      const graph = mergeNodes(serverNodes, prev, statuses, issues, positionsFromServer, types, phases);
      const notes = serverAnnotations.notes || serverAnnotations.groups ? mergeAnnotations(serverAnnotations, prev, annotationsFromServer) : EMPTY_LIST;
      return notes.length ? [...notes, ...graph] : graph;
    });
  }, [serverNodes, serverAnnotations, statuses, issues, phases, types, fitToken, setNodes]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    setEdges((prev) => mergeEdges(serverEdges, prev, statuses));
  }, [serverEdges, statuses, setEdges]);

  // Python asks to select nodes (a drop, a paste) and maybe centre one (an issue or a step was clicked).
  useEffect(() => {
    if (focus && focus.edges && focus.edges.length) {
      // An edge to select (a problem about it was clicked): it alone.
      const chosen = new Set(focus.edges);
      setNodes((prev) => prev.map((n) => (n.selected ? { ...n, selected: false } : n)));
      setEdges((prev) => prev.map((e) => (Boolean(e.selected) === chosen.has(e.id) ? e : { ...e, selected: chosen.has(e.id) })));
      return;
    }
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
      if (readonly || !(event.ctrlKey || event.metaKey) || event.altKey || typingInField(event)) return;
      const key = event.key.toLowerCase();
      let action = SHORTCUTS[key];
      if (!action) return;
      if (key === "z" && event.shiftKey) action = "redo";
      if (action === "copy" && String(window.getSelection() || "").length > 0) return;
      if (action === "paste") {
        // Let the browser fire its paste event (it carries the clipboard: nodes copied in another tab
        // or workflow); should none come, paste what this tab copied.
        clearTimeout(pasteFallback.current);
        pasteFallback.current = setTimeout(() => { pasteFallback.current = null; send("onShortcut", "paste"); }, PASTE_WAIT_MS);
        return;
      }
      event.preventDefault();
      send("onShortcut", action);
    };
    // Text that claims to be Flowloom nodes goes to Python, which checks it (engine/fragments.py)
    // before adding anything; any other paste over the canvas pastes what this tab copied.
    const onPaste = (event) => {
      if (readonly || typingInField(event)) return;
      const waiting = pasteFallback.current !== null;
      clearTimeout(pasteFallback.current);
      pasteFallback.current = null;
      const text = (event.clipboardData && event.clipboardData.getData("text/plain")) || "";
      if (/^\s*\{[\s\S]{0,200}"flowloom"/.test(text)) {
        event.preventDefault();
        send("onPasteText", text);
      } else if (waiting) {
        send("onShortcut", "paste");
      }
    };
    document.addEventListener("keydown", onKey);
    document.addEventListener("paste", onPaste);
    return () => {
      document.removeEventListener("keydown", onKey);
      document.removeEventListener("paste", onPaste);
      clearTimeout(pasteFallback.current);
    };
  }, [send, readonly]);

  // A palette item chosen from the keyboard: the node goes to the middle of the view (below the
  // nodes already there), through the same onDrop event as a drag.
  useEffect(() => {
    const onAdd = (event) => {
      const kind = event.detail && event.detail.kind;
      if (readonly || !kind || !wrapper.current) return;
      const r = wrapper.current.getBoundingClientRect();
      const at = flow.screenToFlowPosition({ x: r.left + r.width / 2, y: r.top + r.height / 2 });
      let x = Math.round(at.x - NODE_WIDTH / 2);
      let y = Math.round(at.y - 22);
      const taken = storeApi.getState().nodes;
      for (let i = 0; i < 50 && taken.some((n) => Math.abs(n.position.x - x) < NODE_WIDTH / 2 && Math.abs(n.position.y - y) < ADD_STEP / 2); i++) {
        y += ADD_STEP;
      }
      send("onDrop", kind, x, y);
    };
    window.addEventListener(ADD_NODE_EVENT, onAdd);
    return () => window.removeEventListener(ADD_NODE_EVENT, onAdd);
  }, [flow, send, storeApi, readonly]);

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

  // Arrow keys move the selected nodes (React Flow's keyboard access): no drag starts or stops, so
  // the moves are gathered here and sent like a drag stop once the keys rest.
  const dragging = useRef(false);
  const keyMoves = useRef(new Map());
  const keyTimer = useRef(null);
  const handleNodesChange = useCallback(
    (changes) => {
      onNodesChange(changes);
      if (readonly || dragging.current) return;
      let moved = false;
      for (const c of changes) {
        if (c.type === "position" && c.position && !c.dragging) {
          keyMoves.current.set(c.id, { id: c.id, x: Math.round(c.position.x), y: Math.round(c.position.y) });
          moved = true;
        }
      }
      if (!moved) return;
      clearTimeout(keyTimer.current);
      keyTimer.current = setTimeout(() => {
        const batch = Array.from(keyMoves.current.values());
        keyMoves.current.clear();
        if (batch.length) send("onMove", batch);
      }, KEY_MOVE_REST_MS);
    },
    [onNodesChange, readonly, send],
  );
  // Dragging a group moves the nodes it holds (assets/flow_annotations.jsx); they go to Python with it.
  const groupDrag = useRef(null);
  const handleDragStart = useCallback((_event, a, b) => {
    dragging.current = true;
    const dragged = Array.isArray(a) ? a : b || (a ? [a] : []);
    groupDrag.current = groupDragStart(dragged, storeApi.getState().nodes);
  }, [storeApi]);
  const handleDrag = useCallback((_event, a, b) => {
    const drag = groupDrag.current;
    if (!drag) return;
    const moved = groupDragMove(drag, Array.isArray(a) ? a : b || (a ? [a] : []));
    if (moved.size) setNodes((prev) => prev.map((n) => (moved.has(n.id) ? { ...n, position: moved.get(n.id) } : n)));
  }, [setNodes]);
  const handleDragEnd = useCallback(
    (event, node, moved) => {
      dragging.current = false;
      const drag = groupDrag.current;
      groupDrag.current = null;
      const members = drag ? Array.from(drag.last, ([memberId, position]) => ({ id: memberId, position })) : [];
      handleDragStop(event, node, members.length ? [...(moved || []), ...members] : moved);
    },
    [handleDragStop],
  );
  const handleSelectionDragEnd = useCallback((event, moved) => handleDragEnd(event, null, moved), [handleDragEnd]);
  useEffect(() => () => clearTimeout(keyTimer.current), []);

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

  const minimapColor = useCallback((n) => MINIMAP_STATUS[n.data.status] || MINIMAP_IDLE, []);
  const annotate = useMemo(() => ({ send, readonly }), [send, readonly]);

  // The toolbar's "Add note" (in the middle of the view) and "Group selection" (around the selected
  // nodes, measured here) arrive as DOM events.
  useEffect(() => {
    const onAddNote = () => {
      if (readonly || !wrapper.current) return;
      const r = wrapper.current.getBoundingClientRect();
      const at = flow.screenToFlowPosition({ x: r.left + r.width / 2, y: r.top + r.height / 2 });
      send("onAnnotate", "add_note", "", { x: Math.round(at.x - 120), y: Math.round(at.y - 80) });
    };
    const onGroup = () => {
      if (readonly) return;
      const chosen = storeApi.getState().nodes.filter((n) => n.selected && !isAnnotation(n.id));
      const boxes = chosen.map((n) => ({
        x: n.position.x, y: n.position.y,
        w: n.measured?.width ?? n.initialWidth ?? NODE_WIDTH, h: n.measured?.height ?? n.initialHeight ?? 80,
      }));
      const b = boundsOf(boxes);
      send("onAnnotate", "group", "", b
        ? { nodes: chosen.map((n) => n.id), x: b.x, y: b.y, width: b.width, height: b.height }
        : { nodes: [] });
    };
    window.addEventListener(ADD_NOTE_EVENT, onAddNote);
    window.addEventListener(GROUP_SELECTION_EVENT, onGroup);
    return () => {
      window.removeEventListener(ADD_NOTE_EVENT, onAddNote);
      window.removeEventListener(GROUP_SELECTION_EVENT, onGroup);
    };
  }, [flow, send, storeApi, readonly]);
  const big = nodes.length >= BIG_GRAPH;

  return (
    <CanvasContext.Provider value={catalogue}>
     <AnnotateContext.Provider value={annotate}>
      <div className="fl-canvas" id={id} ref={wrapper} data-node-count={nodes.length} data-diff={diffView ? "on" : undefined}>
        <style>{CSS}</style>
        <style>{ANNOTATION_CSS}</style>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={ALL_NODE_TYPES}
          onNodesChange={handleNodesChange}
          onNodeDragStart={handleDragStart}
          onSelectionDragStart={handleDragStart}
          onNodeDrag={handleDrag}
          onSelectionDrag={handleDrag}
          onEdgesChange={onEdgesChange}
          onNodeDragStop={handleDragEnd}
          onSelectionDragStop={handleSelectionDragEnd}
          onConnect={readonly ? undefined : handleConnect}
          onSelectionChange={handleSelection}
          onDelete={readonly ? undefined : handleDelete}
          onDrop={readonly ? undefined : handleDrop}
          onDragOver={readonly ? undefined : handleDragOver}
          deleteKeyCode={readonly ? null : DELETE_KEYS}
          nodesDraggable={!readonly}
          nodesConnectable={!readonly}
          edgesReconnectable={!readonly}
          onlyRenderVisibleElements={big}
          minZoom={MIN_ZOOM}
          maxZoom={2}
          snapToGrid
          snapGrid={SNAP_GRID}
        >
          <Background gap={16} size={1.2} color="var(--gray-6)" />
          <Controls showInteractive={false} showFitView={false} />
          {big ? (
            <CanvasMiniMap nodes={nodes} />
          ) : (
            <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={0} maskColor="var(--gray-a4)" />
          )}
        </ReactFlow>
        {serverNodes.length === 0 && !readonly ? (
          <div className="fl-empty"><div>Drag a node from the palette to start</div></div>
        ) : null}
      </div>
     </AnnotateContext.Provider>
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
