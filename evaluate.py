"""Evaluate a taae codec and reference codecs on a speech set; see ``taae.eval.run`` and ``--help``.

    python evaluate.py --checkpoint ckpt.ckpt --data data/test --presets native,400bps,700bps,1000bps --out eval/
    python evaluate.py --checkpoint none --data data/test --references opus,codec2,mulaw --out eval_refs/
"""

from taae.eval.run import main

if __name__ == "__main__":
    raise SystemExit(main())
