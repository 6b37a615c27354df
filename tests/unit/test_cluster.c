/* Unit tests of the pure membership decisions of cluster/membership.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <corral/cluster.h>

#define VOTER 0
#define STANDBY 1
#define SPARE 2

static struct state_raft_node node(uint64_t id, int role)
{
	struct state_raft_node n;

	memset(&n, 0, sizeof n);
	n.id = id;
	n.role = role;
	return n;
}

static void test_role_first_joiners_vote(void **state)
{
	struct state_raft_node nodes[3] = { node(1, VOTER), node(2, STANDBY) };

	(void)state;
	/* A joiner accepted as a stand-by becomes a voter while there are
	 * fewer than max_voters other voters. */
	assert_int_equal(cluster_role_choose(nodes, 2, 2, 3, 2), VOTER);
	nodes[1] = node(2, VOTER);
	nodes[2] = node(3, STANDBY);
	assert_int_equal(cluster_role_choose(nodes, 3, 3, 3, 2), VOTER);
}

static void test_role_standby_then_spare(void **state)
{
	struct state_raft_node nodes[6] = {
		node(1, VOTER),   node(2, VOTER),   node(3, VOTER),
		node(4, STANDBY), node(5, STANDBY), node(6, STANDBY),
	};

	(void)state;
	/* Three voters: the 4th and 5th members stay stand-bys. */
	assert_int_equal(cluster_role_choose(nodes, 4, 4, 3, 2), STANDBY);
	assert_int_equal(cluster_role_choose(nodes, 5, 5, 3, 2), STANDBY);
	/* Two stand-bys already: the 6th is a spare... */
	nodes[5] = node(6, SPARE);
	assert_int_equal(cluster_role_choose(nodes, 6, 6, 3, 2), SPARE);
	/* ...unless it already is a stand-by (never demoted). */
	nodes[5] = node(6, STANDBY);
	assert_int_equal(cluster_role_choose(nodes, 6, 4, 3, 2), STANDBY);
	/* No stand-bys allowed. */
	assert_int_equal(cluster_role_choose(nodes, 3, 9, 3, 0), SPARE);
}

static void test_role_voter_kept(void **state)
{
	struct state_raft_node nodes[4] = { node(1, VOTER), node(2, VOTER),
					    node(3, VOTER), node(4, VOTER) };

	(void)state;
	assert_int_equal(cluster_role_choose(nodes, 4, 4, 3, 2), VOTER);
}

static void check_roles(int role, bool leader, const char *want)
{
	json_t *roles = cluster_roles_json(role, leader);
	char *text = json_dumps(roles, JSON_COMPACT);

	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
	json_decref(roles);
}

static void test_roles_json(void **state)
{
	(void)state;
	check_roles(VOTER, true, "[\"database-leader\",\"database\"]");
	check_roles(VOTER, false, "[\"database\"]");
	check_roles(STANDBY, false, "[\"database-standby\"]");
	check_roles(SPARE, false, "[]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_role_first_joiners_vote),
		cmocka_unit_test(test_role_standby_then_spare),
		cmocka_unit_test(test_role_voter_kept),
		cmocka_unit_test(test_roles_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
