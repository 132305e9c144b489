"""data_prep: download, verify and prepare datasets into the kit's prepared format (see docs/data_format.md).

Run ``python -m data_prep --help``. ``t2ilib`` never imports this package: the prepared directory is the contract.
"""
