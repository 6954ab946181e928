"""The language: the grammar of record (grammars/cgraph.lark, parsed by Lark) and the fast parser."""
