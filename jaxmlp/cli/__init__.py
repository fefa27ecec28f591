"""The `jaxmlp` command line: `train`, `sweep`, `info`, `predict`, `evaluate`, `export`, `noise-scale`, and
`gradcheck` / `demo` (forwarded).

    jaxmlp train                                   # relu net on the spiral, ~95%+ in seconds
    jaxmlp train --dataset mnist --hidden 512,512 --optimizer adamw --epochs 20
    jaxmlp train --config run.toml --learning-rate 3e-4   # flags override the file
    jaxmlp train --resume runs/spiral-20250101-120000 --epochs 200
    jaxmlp train --devices all --batch-size 1024 --precision bf16          # data parallel, every device
    jaxmlp train --devices all --out-dir runs/x --coordinator host0:1234 --num-processes 2 --process-id 0
    jaxmlp export runs/spiral-20250101-120000 --npz model.npz
    jaxmlp info runs/spiral-20250101-120000        # layers, params, FLOPs, optimizer, data
    jaxmlp predict runs/spiral-20250101-120000 --out scores.csv    # the run's test split, or --dataset SPEC
    jaxmlp evaluate runs/spiral-20250101-120000 --dataset npz:new.npz
    jaxmlp noise-scale runs/spiral-20250101-120000   # the gradient noise scale; a batch range
    jaxmlp sweep --grid learning_rate=1e-3,1e-2 --grid seed=0:4 --epochs 20   # 8 models, one program
    jaxmlp gradcheck ...                           # handled by jaxmlp.gradcheck.main
    jaxmlp demo ...                                # handled by jaxmlp.demos.main

Every `TrainConfig` field is a flag, generated from the dataclass. Usage errors, bad configs and
bad data end in ONE line on stderr and exit code 2; a diverged run exits with code 1. Nothing
here imports JAX until a command runs, so `jaxmlp --help` is quick. Modules, one concept each:

    usage        PROG, UsageError and the parser that raises it: one line on stderr, exit code 2
    flags        TrainConfig fields as flags (value_parser, add_config_flags), config files
    run_config   a run's config and run dir from flags, --config or --resume; the float64 scope
    progress     ConsoleProgress (epoch lines, tqdm bar) and RunLog (metrics.jsonl) callbacks
    train_cmd    `jaxmlp train`: its flags, data, fit, summary.json, plots
    saved_run    what commands on a saved run share: --epoch/--best/--last, data read as the run's own
    export_cmd   `jaxmlp export`: a run's params to a plain .npz
    info_cmd     `jaxmlp info`: a run's model summary, from its config and checkpoint metadata
    predict_cmd  `jaxmlp predict`: a run's scores and classes to .npy or .csv
    evaluate_cmd `jaxmlp evaluate`: a run's loss and accuracy (or mse) on a data set
    noise_scale_cmd  `jaxmlp noise-scale`: B_simple at init and after training, a batch range
    grid_flags   --grid FIELD=VALUES and --grid-file: a sweep's grid
    sweep_progress  SweepConsole: the sweep's one progress bar and its lines
    sweep_cmd    `jaxmlp sweep`: its flags, the sweep, its run directory's files, the ranked table
    program      build_parser and main: dispatch to COMMANDS and FORWARDED, exit statuses

To add a subcommand, add an entry to `program.FORWARDED` (a module with `main(argv) -> int`,
imported only when used), or a module with `add_arguments` and a `cmd_*` function, wired into
`program.build_parser` and `program.COMMANDS`.
"""
from jaxmlp.cli.flags import add_config_flags, load_config_file
from jaxmlp.cli.program import COMMANDS, FORWARDED, build_parser, main
from jaxmlp.cli.progress import ConsoleProgress, RunLog
from jaxmlp.cli.usage import PROG, UsageError

__all__ = ["main", "build_parser", "COMMANDS", "FORWARDED", "PROG", "UsageError", "add_config_flags",
           "load_config_file", "ConsoleProgress", "RunLog"]
