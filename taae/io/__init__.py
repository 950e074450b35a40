"""What taae reads and writes, and how it decides to trust a file.

- :mod:`taae.io.atomic`: the one atomic writer (temporary sibling, fsync, ``os.replace``);
- :mod:`taae.io.audio`: audio files and the one pre-processing path (mono, 16 kHz, loudness);
- :mod:`taae.io.tokens`: the token file;
- :mod:`taae.io.checkpoints`: loading checkpoints without running their code;
- :mod:`taae.io.registry`: the class allow-list that builds models from specs in files;
- :mod:`taae.io.export`: the export folder (``config.json`` + ``model.safetensors``) and checkpoint weights;
- :mod:`taae.io.model_card`: the ``README.md`` an export carries.
"""
