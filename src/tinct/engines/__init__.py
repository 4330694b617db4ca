"""How many photos are driven through the one inference door (``tinct.pipeline.Colorizer``).

* ``listing``: inputs -> (input, output) pairs, for local paths and fsspec URLs; shared by both engines.
* local engine: ``Colorizer.colorize_files`` in this process, behind ``tinct colorize``'s progress bar
  (``tinct.cli.colorize_photos``).
* ``manifest``: the run manifest in the destination (what is done, what failed), so that a rerun
  does only the missing work.
* ``ray_data``: the Ray Data engine (``tinct colorize --engine ray``): a listing ->
  ``map_batches`` over an actor pool whose actors each hold one ``Colorizer`` -> the manifest.

Importing this package imports neither torch nor Ray.
"""
