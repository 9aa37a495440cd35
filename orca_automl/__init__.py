"""orca-automl: budgeted search over ORCA's align-then-refine recipe.

Adapt one pretrained model (text or vision) to a task of another modality: an embedder maps
the task's inputs to the body's input space, an alignment stage pulls the embedded features
towards the body's own data, then everything is fine-tuned. `orca-search` searches how.
"""

__version__ = "0.1.0"
