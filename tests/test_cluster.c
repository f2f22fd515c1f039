/*
 * test_cluster.c: a cluster's members survive state.json, with and
 * without the optional fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rotator/cluster.h"

static void assert_same_node(const struct node *a, const struct node *b)
{
	assert_int_equal(a->generation, b->generation);
	assert_string_equal(a->host, b->host);
	assert_int_equal(a->port, b->port);
	assert_int_equal(a->role, b->role);
	assert_int_equal(a->born_at, b->born_at);
	assert_int_equal(a->adopted, b->adopted);
	if (a->dir || b->dir)
		assert_string_equal(a->dir, b->dir);
	if (a->born_from || b->born_from)
		assert_string_equal(a->born_from, b->born_from);
	if (a->conf_file || b->conf_file)
		assert_string_equal(a->conf_file, b->conf_file);
}

static void node_round_trip(void **state)
{
	struct node full = {.generation = 7,
			    .host = "127.0.0.1",
			    .port = 15507,
			    .role = NODE_PRIMARY,
			    .born_at = 1764771372000,
			    .adopted = true};
	struct node bare = {.generation = 8,
			    .host = "127.0.0.1",
			    .port = 15508,
			    .role = NODE_FRESH};
	struct node back;
	json_t *j;

	full.dir = "/srv/pg/main";
	full.born_from = "adopt";
	full.conf_file = "/etc/postgresql/15/main/postgresql.conf";
	j = node_to_json(&full);
	assert_int_equal(node_from_json(j, &back), 0);
	assert_same_node(&full, &back);
	node_release(&back);
	json_decref(j);

	j = node_to_json(&bare);
	assert_int_equal(node_from_json(j, &back), 0);
	assert_same_node(&bare, &back);
	node_release(&back);
	json_decref(j);
}

static void bad_role_is_refused(void **state)
{
	json_t *j = json_pack("{s:i, s:s, s:i, s:s, s:I}", "generation", 1,
			      "host", "127.0.0.1", "port", 1, "role", "king",
			      "born_at_ms", (json_int_t)0);
	struct node back;

	assert_int_equal(node_from_json(j, &back), -1);
	json_decref(j);
}

static void state_round_trip(void **state)
{
	char dir[] = "/tmp/rotator-cluster-XXXXXX", err[256];
	struct config_cluster cfg = {.name = "orders"};
	struct cluster a = {.cfg = &cfg}, b = {.cfg = &cfg};
	struct node n1 = {.generation = 3,
			  .host = "127.0.0.1",
			  .port = 15503,
			  .role = NODE_PRIMARY};
	struct node n2 = {.generation = 4,
			  .host = "127.0.0.1",
			  .port = 15504,
			  .role = NODE_FRESH};

	assert_non_null(mkdtemp(dir));
	a.dir = b.dir = dir;
	n1.born_from = "orders-000002";
	cluster_add_node(&a, &n1);
	cluster_add_node(&a, &n2);
	a.next_generation = 5;
	a.next_snapshot = 3;
	a.next_rotation = 9;
	a.last_rotation_at = 1700000000123;
	a.last_rotation =
		json_pack("{s:s, s:s}", "id", "orders-r8", "state", "aborted");
	assert_int_equal(cluster_save_state(&a), 0);
	assert_int_equal(cluster_load_state(&b, err, sizeof(err)), 0);
	assert_int_equal(b.n_nodes, 2);
	assert_same_node(&a.nodes[0], &b.nodes[0]);
	assert_same_node(&a.nodes[1], &b.nodes[1]);
	assert_int_equal(b.next_generation, 5);
	assert_int_equal(b.next_snapshot, 3);
	assert_int_equal(b.next_rotation, 9);
	assert_true(b.last_rotation_at == a.last_rotation_at);
	assert_true(json_equal(b.last_rotation, a.last_rotation));
	assert_int_equal(cluster_primary(&b)->generation, 3);
	cluster_remove_node(&b, 3);
	assert_null(cluster_primary(&b));
	assert_non_null(cluster_node(&b, 4));
	for (int i = 0; i < a.n_nodes; i++)
		node_release(&a.nodes[i]);
	for (int i = 0; i < b.n_nodes; i++)
		node_release(&b.nodes[i]);
	free(a.nodes);
	free(b.nodes);
	json_decref(a.last_rotation);
	json_decref(b.last_rotation);
	assert_int_equal(remove_tree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(node_round_trip),
		cmocka_unit_test(bad_role_is_refused),
		cmocka_unit_test(state_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
