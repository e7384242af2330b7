"""Operations apart from the execution core: the `flowloom` CLI, launcher, embedded services, health, migrations."""
