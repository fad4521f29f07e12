"""Every component id of the dashboard, in one place (pages and callbacks import them from here)."""

from __future__ import annotations

# -- app shell --------------------------------------------------------------------------------
NAV_LOCATION = "nav-location"  # dcc.Location used by callbacks to navigate
NAV_JUMP_LAYER = "nav-jump-layer"  # jump box: layer dropdown
NAV_JUMP_UNIT = "nav-jump-unit"  # jump box: unit number
NAV_JUMP_GO = "nav-jump-go"  # jump box: button
NAV_JUMP_MESSAGE = "nav-jump-message"

# -- overview ---------------------------------------------------------------------------------
OVERVIEW_LAYERS_GRAPH = "overview-layers-graph"
OVERVIEW_HEATMAP_GRAPH = "overview-heatmap-graph"
OVERVIEW_PROBES_GRAPH = "overview-probes-graph"
OVERVIEW_BEST_TABLE = "overview-best-table"
OVERVIEW_DISSECTION_CARD = "overview-dissection-card"
OVERVIEW_DISSECTION_GRAPH = "overview-dissection-graph"  # concept x layer count of dissected units
OVERVIEW_DISSECTION_TABLE = "overview-dissection-table"  # units per dissection status and layer

# -- unit page --------------------------------------------------------------------------------
UNIT_STORE = "unit-store"  # {"layer": ..., "unit": ...} of the page shown
UNIT_HISTOGRAM_GRAPH = "unit-histogram-graph"
UNIT_DISTRIBUTIONS_GRAPH = "unit-distributions-graph"
UNIT_METRICS_TABLE = "unit-metrics-table"
UNIT_METRICS_NOTE = "unit-metrics-note"
UNIT_TOPK_GRID = "unit-topk-grid"
UNIT_QUANTILES = "unit-quantiles"
UNIT_OBJECTS_GRAPH = "unit-objects-graph"
UNIT_PLACES_GRAPH = "unit-places-graph"
UNIT_TUNING_GRAPH = "unit-tuning-graph"
UNIT_PREV = "unit-prev"
UNIT_NEXT = "unit-next"
UNIT_CLIP_GRAPH = "unit-clip-graph"  # pattern id type: {"type": UNIT_CLIP_GRAPH, "rank": r}
UNIT_CLIP_AUDIO = "unit-clip-audio"  # pattern id type: {"type": UNIT_CLIP_AUDIO, "rank": r}
UNIT_PLAYER = "unit-player"  # shared hidden player of the play buttons
PLAY_BUTTON = "play-button"  # pattern id type: {"type": PLAY_BUTTON, "clip": id, "key": k}
UNIT_DISSECTION_CARD = "unit-dissection-card"
UNIT_DISSECTION_TABLE = "unit-dissection-table"  # the unit's concepts by IoU
UNIT_DISSECTION_PROFILE = "unit-dissection-profile"  # onset-aligned profile of its best concept
UNIT_DISSECTION_CLIPS = "unit-dissection-clips"
UNIT_DISSECTION_GRAPH = "unit-dissection-graph"  # pattern id type: {"type": UNIT_DISSECTION_GRAPH, "rank": i}
UNIT_DISSECTION_AUDIO = "unit-dissection-audio"  # pattern id type: {"type": UNIT_DISSECTION_AUDIO, "rank": i}

# -- search -----------------------------------------------------------------------------------
SEARCH_TEXT = "search-text"  # free text over category names
SEARCH_MATCHES = "search-matches"  # matching categories, as chips
SEARCH_CATEGORY = "search-category"
SEARCH_METRIC = "search-metric"
SEARCH_LAYERS = "search-layers"
SEARCH_SELECTIVE_ONLY = "search-selective-only"
SEARCH_TOP = "search-top"
SEARCH_TABLE = "search-table"
SEARCH_SUMMARY = "search-summary"
SEARCH_NOTE = "search-note"  # what the highlighted rows are
SEARCH_CHIP = "search-chip"  # pattern id type: {"type": SEARCH_CHIP, "category": c}
SEARCH_CONCEPT = "search-concept"  # temporal dissection: the concept
SEARCH_CONCEPT_LAYERS = "search-concept-layers"
SEARCH_CONCEPT_TABLE = "search-concept-table"
SEARCH_CONCEPT_SUMMARY = "search-concept-summary"
CLIPS_TEXT = "clips-text"  # free text over clip names and labels
CLIPS_TABLE = "clips-table"

# -- clip page --------------------------------------------------------------------------------
CLIP_STORE = "clip-store"
CLIP_SPECTROGRAM_GRAPH = "clip-spectrogram-graph"
CLIP_OVERLAY_LAYER = "clip-overlay-layer"
CLIP_OVERLAY_UNIT = "clip-overlay-unit"
CLIP_UNITS_TABLE = "clip-units-table"
CLIP_OBJECTS_GRAPH = "clip-objects-graph"
CLIP_PLACES_GRAPH = "clip-places-graph"
CLIP_AUDIO = "clip-audio"
NUISANCE_CARD = "nuisance-card"  # overview: categories a nuisance alone separates

# -- unit portraits (STRFs, what a unit wants to hear, attribution) ----------------------------
UNIT_STRF_CARD = "unit-strf-card"
UNIT_STRF_GRAPH = "unit-strf-graph"
UNIT_STRF_R = "unit-strf-r"  # the unit's held-out r
STRF_GALLERY = "strf-gallery"  # the layer gallery's grid of thumbnails
OVERVIEW_STRF_CARD = "overview-strf-card"
UNIT_HEAR_CARD = "unit-hear-card"  # what the unit wants to hear
UNIT_HEAR_BUTTON = "unit-hear-button"
UNIT_HEAR_RESULT = "unit-hear-result"
UNIT_HEAR_SEEDS = "unit-hear-seeds"
UNIT_HEAR_ACTIVATION = "unit-hear-activation"  # the best seed's activation
UNIT_HEAR_RELATIVE = "unit-hear-relative"  # ... relative to the best natural clip
UNIT_HEAR_POLL = "unit-hear-poll"  # polls the background job
UNIT_ATTR_CARD = "unit-attr-card"  # attribution on a top clip
UNIT_ATTR_CLIP = "unit-attr-clip"  # which top clip (rank)
UNIT_ATTR_BUTTON = "unit-attr-button"
UNIT_ATTR_RESULT = "unit-attr-result"
UNIT_ATTR_GRAPH = "unit-attr-graph"
UNIT_ATTR_POLL = "unit-attr-poll"  # polls the background job
