"""`llmrec demo`: the whole pipeline on the embedded defaults (run_demo in llmrec.demo.run)."""
