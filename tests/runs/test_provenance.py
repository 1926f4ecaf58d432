"""provenance: every run records where its numbers came from, and one line says it."""

import torch

from cifar_utils.runs import provenance


def test_a_record_names_commit_torch_cpu_isa_threads_and_date():
    prov = provenance.provenance(torch.device("cpu"))
    for key in ("git_commit", "torch", "cpu", "cpu_isa", "threads", "date", "device_name"):
        assert prov[key] not in (None, ""), key
    assert prov["torch"] == torch.__version__ and prov["threads"] == torch.get_num_threads()


def test_the_machine_line_says_it_in_words():
    prov = provenance.provenance(torch.device("cpu"))
    line = provenance.machine_line(prov, precision="bf16")
    assert (
        f"commit {prov['git_commit']}" in line and "precision bf16" in line and f"ISA class {prov['cpu_isa']}" in line
    )
