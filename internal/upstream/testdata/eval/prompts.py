# Fixture in the shape of upstream's eval/prompts.py, worded for these tests:
# judge templates filled with str.format(question=..., answer=...).

Prompts = {}

Prompts["relevance_0_100"] = """Fixture rubric 'relevance'.
[QUESTION START]
{question}
[QUESTION END]
[ANSWER START]
{answer}
[ANSWER END]
Say how relevant the answer is, 0 to 100."""

# A decoy: text inside another prompt is not a statement.
Prompts['notes'] = '''Remember that
Prompts["coherence_0_100"] = "this line is only text"
is not an assignment.'''

Prompts["coherence_0_100"] = """Fixture rubric 'coherence': judge only how coherent the answer is, \
whatever you think of it.
[QUESTION START]
{question}
[QUESTION END]
[ANSWER START]
{answer}
[ANSWER END]
Score it 0 to 100.\tA score is one number, e.g. {{"score": 50}}.
An answer that says \"I don't know\" can be coherent; so can one that says 'no' \\ 'yes'.
Reply with the number only."""

Prompts["short_0_100"] = 'One line: {question} -> {answer}\n'

name = "world"
Prompts["greeting"] = f"hello {name}"
