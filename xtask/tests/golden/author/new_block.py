"""Text-Stats: say here in one line what this block does."""

from datablox_framework.block import Block


class text_stats(Block):
    """Scaffolded by `cargo xtask new`: passes every record of `input` on to `output` unchanged.

    To fill it in, replace this docstring with what the block does and then:
    - list the keys of its `args` in `ARGS` (a key outside it is refused before the run, with the
      closest one named);
    - name its ports in `INPUTS` and `OUTPUTS` (placement refuses a connection to a port that is
      not there, before anything is deployed);
    - in `on_load`, read the configuration (`self.config_value(config, "name", default, kind)`) and
      add those ports with the fields their records carry: `self.add_input("input", ["path"])`
      means records must have `path`, `self.add_output("output", ["path", "size"])` lists what is
      pushed (`None`: whatever came in);
    - in `recv_push`, turn each batch (a `Log`: `log["path"]` is a column, `log.iter_rows()` yields
      dicts) into rows and push them with `self.push_rows("output", rows)`;
    - a source generates its records in `on_start` and declares no input; a sink declares no output;
      totals go out in `on_shutdown`;
    - list what the block needs installed in `requires` of its manifest under manifests/.
    Then make the test beside this file say what the block does.
    """

    ARGS = ()
    INPUTS = ("input",)
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.add_input("input", [])
        self.add_output("output", None)

    def recv_push(self, port, log):
        self.push_rows("output", list(log.iter_rows()))
